"""Train the damage-grade network: `python -m training.train --config FILE [--resume]`.

In the spirit of torchvision's classification references: explicit config, fixed seeds, a plain
loop (`train_one_epoch`, `evaluate`), progress bars, a checkpoint every epoch (resumable), metrics
as JSON lines and PNG curves. After the last epoch the best checkpoint is calibrated on the
validation split, exported to ONNX and evaluated on the test split, all inside the run folder:

    runs/<name>/config.json  manifest.csv  metrics.jsonl  curves.png
                checkpoints/last.pt  checkpoints/best.pt
                export/<version>/model.onnx ...   eval/test/summary.md ...
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from models.metrics import auroc
from training.balance import sampling_weights
from training.calibrate import fit_temperature
from training.config import RunConfig, config_dict, load_config
from training.datasets import ManifestDataset, build_manifest
from training.manifest import Row, read_manifest
from training.networks import DamageNet, build_network, freeze_stem, ordinal_loss, set_train_mode
from training.presets import EvalPreset, TrainPreset


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    rows: list[Row], transform, cfg: RunConfig, *, shuffle: bool, weights: np.ndarray | None = None
) -> DataLoader:
    """`weights`: draw an epoch of len(rows) photos with replacement in proportion to them."""
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler = None
    if weights is not None:
        sampler = WeightedRandomSampler(
            weights.tolist(), num_samples=len(rows), replacement=True, generator=generator
        )
    return DataLoader(
        ManifestDataset(rows, transform),
        batch_size=cfg.train.batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=cfg.train.num_workers,
        worker_init_fn=_worker_init,
        generator=generator,
        persistent_workers=cfg.train.num_workers > 0,
        drop_last=False,
    )


def train_one_epoch(
    model: DamageNet,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    max_steps: int = 0,
) -> dict:
    set_train_mode(model)
    total, count, steps = 0.0, 0, 0
    bar = tqdm(loader, desc=f"epoch {epoch} train", unit="batch", leave=False)
    for image, grade, damaged in bar:
        loss = ordinal_loss(model(image), grade, damaged)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(image)
        count += len(image)
        steps += 1
        bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{scheduler.get_last_lr()[-1]:.2e}")
        if max_steps and steps >= max_steps:
            break
    return {"train_loss": total / max(count, 1), "train_images": count}


@torch.no_grad()
def predict_logits(model: DamageNet, loader: DataLoader, desc: str = "eval") -> np.ndarray:
    model.eval()
    out = [model(image).numpy() for image, _, _ in tqdm(loader, desc=desc, unit="batch", leave=False)]
    return np.concatenate(out) if out else np.zeros((0, 3), dtype=np.float32)


def evaluate(model: DamageNet, loader: DataLoader, rows: list[Row]) -> dict:
    """Validation loss, AUROC damaged-vs-intact (overall and per source), grade accuracy."""
    logits = predict_logits(model, loader, "val")
    grade = torch.tensor([-1 if r.grade is None else r.grade for r in rows])
    damaged = torch.tensor([r.damaged for r in rows])
    metrics = {"val_loss": float(ordinal_loss(torch.from_numpy(logits), grade, damaged))}
    p_damaged = 1 / (1 + np.exp(-logits[:, 0]))
    y = damaged.numpy()
    metrics["val_auroc"] = float(auroc(y, p_damaged))
    for source in sorted({r.source for r in rows}):
        idx = np.array([r.source == source for r in rows])
        metrics[f"val_auroc[{source}]"] = float(auroc(y[idx], p_damaged[idx]))
        if not y[idx].any():  # an all-intact subset: the share wrongly flagged as damaged
            metrics[f"val_fpr[{source}]"] = float((p_damaged[idx] >= 0.5).mean())
    graded = grade.numpy() >= 0
    if graded.any():
        predicted = (1 / (1 + np.exp(-logits[graded])) >= 0.5).sum(1)
        metrics["val_grade_accuracy"] = float((predicted == grade.numpy()[graded]).mean())
    return metrics


def lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


def build_optimizer(model: DamageNet, cfg: RunConfig) -> torch.optim.Optimizer:
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    head = list(model.head.parameters())
    scale = cfg.train.backbone_lr_scale if cfg.model.pretrained else 1.0
    return torch.optim.AdamW(
        [{"params": backbone, "lr": cfg.train.lr * scale}, {"params": head, "lr": cfg.train.lr}],
        weight_decay=cfg.train.weight_decay,
    )


def save_checkpoint(path: Path, **state) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a crash mid-write never leaves a corrupt checkpoint


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax1.set(xlabel="epoch", ylabel="ordinal loss", title="Loss")
    ax1.legend()
    for key in sorted(k for k in history[-1] if k.startswith("val_auroc")):
        ax2.plot(
            epochs, [h.get(key, float("nan")) for h in history], "o-", label=key.replace("val_auroc", "AUROC")
        )
    ax2.set(xlabel="epoch", ylabel="AUROC damaged vs intact", title="Validation AUROC", ylim=(0.4, 1.0))
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_init_checkpoint(model: DamageNet, path: str | Path) -> dict:
    """Start from a version's weights (its float16 `checkpoint.pt`, loaded as float32, strictly).

    Fine-tuning from the champion keeps what it learned: a short run on new data (the adjusters'
    grades) adjusts it rather than relearning everything from ImageNet. Returns what was loaded.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if state.get("arch") != model.arch:
        raise ValueError(f"{path}: checkpoint of {state.get('arch')!r}, but the run trains {model.arch!r}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()})
    print(f"initial weights: {path} (version {state.get('version')})")
    return {"checkpoint": str(path), "version": state.get("version"), "arch": state.get("arch")}


def run(cfg: RunConfig, *, resume: bool = False) -> Path:
    """Train, calibrate, export and evaluate. Returns the exported version folder."""
    started = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.train.threads)
    (out / "config.json").write_text(json.dumps(config_dict(cfg), indent=2))

    manifest = out / "manifest.csv"
    if not (resume and manifest.exists()):
        build_manifest(cfg.data, manifest)
    rows = read_manifest(manifest)
    train_rows = [r for r in rows if r.split == "train"]
    val_rows = [r for r in rows if r.split == "val"]
    if not train_rows or not val_rows:
        raise SystemExit(f"{manifest}: need train and val rows (have {len(train_rows)} / {len(val_rows)})")
    print(
        f"data: {len(train_rows)} train, {len(val_rows)} val, "
        f"{sum(r.split == 'test' for r in rows)} test rows from {sorted({r.source for r in rows})}"
    )

    # `pretrained` with an init checkpoint: the backbone starts from learned weights (so it still moves
    # at backbone_lr_scale), but those of the checkpoint, so the ImageNet ones are not loaded first.
    init = cfg.model.init_checkpoint
    model = build_network(
        cfg.model.arch, pretrained=cfg.model.pretrained and not init, dropout=cfg.model.dropout
    )
    init_from = load_init_checkpoint(model, init) if init else None
    freeze_stem(model, cfg.model.freeze_blocks)
    optimizer = build_optimizer(model, cfg)
    weights = None
    if cfg.data.balance_sources:
        weights, balance = sampling_weights(train_rows, cfg.data.balance_sources)
        (out / "balance.json").write_text(json.dumps(balance, indent=2))
        for cell, r in balance.items():
            print(
                f"balance {cell}: {r['photos']} photos, damaged share "
                f"{r['damaged_share']:.2f} -> {r['damaged_share_balanced']:.2f}"
            )
    train_loader = make_loader(train_rows, TrainPreset(), cfg, shuffle=True, weights=weights)
    val_loader = make_loader(val_rows, EvalPreset(), cfg, shuffle=False)
    steps_per_epoch = (
        len(train_loader) if not cfg.train.max_steps else min(len(train_loader), cfg.train.max_steps)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(min(cfg.train.warmup_steps, steps_per_epoch), steps_per_epoch * cfg.train.epochs)
    )

    ckpt_dir = out / "checkpoints"
    history: list[dict] = []
    start_epoch, best = 0, math.inf
    if resume and (ckpt_dir / "last.pt").exists():
        state = torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start_epoch, best, history = state["epoch"] + 1, state["best_val_loss"], state["history"]
        print(f"resumed after epoch {state['epoch']}")

    metrics_file = out / "metrics.jsonl"
    for epoch in range(start_epoch, cfg.train.epochs):
        t0 = time.time()
        record: dict[str, float] = {"epoch": epoch}
        record |= train_one_epoch(model, train_loader, optimizer, scheduler, epoch, cfg.train.max_steps)
        record |= evaluate(model, val_loader, val_rows)
        record["seconds"] = round(time.time() - t0, 1)
        history.append(record)
        with metrics_file.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        if record["val_loss"] < best:
            best = record["val_loss"]
            save_checkpoint(
                ckpt_dir / "best.pt",
                model=model.state_dict(),
                arch=cfg.model.arch,
                epoch=epoch,
                metrics=record,
            )
        save_checkpoint(
            ckpt_dir / "last.pt",
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng=torch.get_rng_state(),
            epoch=epoch,
            best_val_loss=best,
            history=history,
            arch=cfg.model.arch,
        )
    plot_curves(history, out / "curves.png")

    # Calibrate the best checkpoint on the validation split, then export and evaluate it.
    best_state = torch.load(ckpt_dir / "best.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(best_state["model"])
    logits = predict_logits(model, val_loader, "calibrate")
    temperature = fit_temperature(
        logits,
        np.array([-1 if r.grade is None else r.grade for r in val_rows]),
        np.array([r.damaged for r in val_rows]),
    )
    print(f"temperature fitted on validation: {temperature:.3f}")

    from training.export import export_version, write_checksums

    version_dir = export_version(
        model,
        temperature,
        cfg,
        out / "export",
        train_manifest=manifest,
        training_summary={
            "history": history,
            "best_epoch": best_state["epoch"],
            "train_minutes": round((time.time() - started) / 60, 1),
            **({"init_from": init_from} if init_from else {}),
        },
    )
    test_rows = [r for r in rows if r.split == "test"]
    if test_rows:
        from training.datasets import BROWN_INTACT_SOURCE
        from training.evaluate import evaluate as evaluate_report

        evaluate_report(
            version_dir / "model.onnx",
            manifest,
            out / "eval" / "test",
            split="test",
            focus=[BROWN_INTACT_SOURCE],
            title=f"{cfg.name}: test split",
        )
        # The version carries its own test metrics (the registry lists them beside each version).
        shutil.copyfile(out / "eval" / "test" / "metrics.json", version_dir / "metrics.json")
        write_checksums(version_dir)
    print(f"done in {(time.time() - started) / 60:.1f} min: {version_dir}")
    return version_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="TOML file (see training/configs/)")
    parser.add_argument("--out", help="override the run folder")
    parser.add_argument("--resume", action="store_true", help="continue from <run>/checkpoints/last.pt")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if args.out:
        cfg.out_dir = args.out
    run(cfg, resume=args.resume)


if __name__ == "__main__":
    main()
