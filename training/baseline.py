"""The box-type-bias baseline: ImageNet EfficientNet-Lite0 features + logistic regression.

`python -m training.baseline --out DIR` trains a linear probe on the shared dataset's train split
(binary labels only) and scores the test split, reporting the same metrics as `training.evaluate`,
with the intact brown cardboard subset as the focus. It exists so the model card can compare the
starter model with the naive approach on the same held-out photos: the probe ranks damaged vs
intact fairly, but it learns "brown cardboard = damaged".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.preprocessing import preprocess
from training.config import DataConfig
from training.datasets import BROWN_INTACT_SOURCE, shared_rows
from training.evaluate import evaluate_predictions
from training.manifest import read_manifest
from training.networks import imagenet_lite0


@torch.no_grad()
def features(paths: list[Path], batch: int = 32) -> np.ndarray:
    net = imagenet_lite0().eval()
    net._fc = None
    out = []
    for i in tqdm(range(0, len(paths), batch), desc="features", unit="batch"):
        x = torch.from_numpy(np.stack([preprocess(p) for p in paths[i : i + batch]]))
        out.append(net(x).numpy())
    return np.concatenate(out)


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 500
) -> tuple[np.ndarray, float]:
    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + l2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/baseline", help="report folder")
    parser.add_argument(
        "--manifest", help="score this manifest's test split (default: the real photos' test split)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows = shared_rows(DataConfig())
    if not rows:
        raise SystemExit("the shared dataset is not there (set CLAIMLANE_BOXES_DIR)")
    train = [r for r in rows if r.split == "train"]
    test = [r for r in rows if r.split == "test"]
    if args.manifest:  # e.g. a training run's manifest: synthetic and composite test photos too
        test = [r for r in read_manifest(args.manifest) if r.split == "test"]
    x_train, x_test = features([r.path for r in train]), features([r.path for r in test])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    w, b = fit_logistic((x_train - mean) / std, np.array([r.damaged for r in train], dtype=np.float64))
    p = 1 / (1 + np.exp(-(((x_test - mean) / std) @ w + b)))
    probs = np.stack([1 - p, p, np.zeros_like(p), np.zeros_like(p)], axis=1)  # binary: all mass on grade 1
    report = evaluate_predictions(
        test,
        probs,
        Path(args.out),
        model_version="baseline-linear-probe",
        title="Baseline: ImageNet features + logistic regression",
        split="test",
        focus=[BROWN_INTACT_SOURCE],
    )
    brown = report.get("focus", {}).get(BROWN_INTACT_SOURCE) or {}
    print(f"wrote {args.out}/summary.md; intact brown cardboard wrongly flagged: {brown.get('fpr', 'n/a')}")


if __name__ == "__main__":
    main()
