"""The promotion gate: may a challenger model replace the champion? numpy and onnxruntime only.

Both models are scored on the same labelled photos, per evaluation set (the fixed evaluation set in
the registry, and the adjusters' recent labels), and the challenger must not be worse than the
champion beyond a tolerance on any of:

- AUROC of P(damaged) (ranking damaged above intact): lower by more than `auroc_tolerance` fails;
- ECE of P(damaged) (calibration, which the policy relies on): higher by more than `ece_tolerance`
  fails;
- the fast-lane error rate: among the photos the model would pay instantly (the most likely grade's
  probability >= the policy's confidence threshold, and that grade in the policy's fast-lane grades),
  the share it gets wrong: the true grade differs, or for a photo labelled only damaged/intact, the
  predicted damage (grade >= 1) contradicts the label (with the default fast-lane grades 2 and 3
  that means: the parcel is actually intact). Higher by more than `fast_lane_error_tolerance`
  fails. A model that fast-lanes nothing makes no fast-lane errors: its rate is 0.
- the money the fast lane pays wrongly: every scored photo filed as a one-photo claim at the same
  declared value, the overpayment (offer minus what its true grade is owed, when positive) as a share
  of that value, averaged over photos whose amount owed is known (graded photos, and photos labelled
  intact, which are owed nothing). Offers follow the model's own fast-lane rule: a v2 model's
  certified threshold on P(grade >= g) (`models.fastlane.offered_grades`), an older model's most
  likely grade at the policy's threshold. Higher by more than `overpayment_tolerance` fails: a
  challenger that pays more wrongly is not promoted, however well it ranks.

A set with fewer than `min_samples` scored photos is reported "not enough samples" and does not
block; a metric undefined on a set (AUROC with one class only) is reported "n/a" and does not block.
The result says so in `notes`, so nobody mistakes a skipped check for a passed one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from claims.policy import certified_threshold
from models.fastlane import NO_OFFER, offered_grades
from models.grades import most_likely_grade
from models.inference import DamageModel, Prediction
from models.metrics import auroc, expected_calibration_error

CONFIDENCE_DECIMALS = 6  # as claims.policy rounds a confidence before comparing it

STATUS_OK = "ok"
STATUS_FAIL = "fail"
STATUS_NA = "n/a"
STATUS_FEW = "not enough samples"


@dataclass(frozen=True)
class GateConfig:
    auroc_tolerance: float = 0.01
    ece_tolerance: float = 0.02
    fast_lane_error_tolerance: float = 0.01
    overpayment_tolerance: float = 0.005
    min_samples: int = 10


@dataclass(frozen=True)
class Sample:
    """One labelled photo: the image bytes, its grade (None when only damaged/intact is known) and
    its binary label."""

    image: bytes = field(repr=False)
    grade: int | None
    damaged: int


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


@dataclass(frozen=True)
class GateMetrics:
    n: int  # photos scored
    auroc: float
    ece: float
    fast_lane_error_rate: float
    fast_lane_count: int
    failed: int = 0  # photos that could not be decoded (not scored)
    overpayment: float = 0.0  # mean share of the declared value overpaid, per photo owed a known amount

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "auroc": _num(self.auroc),
            "ece": _num(self.ece),
            "fast_lane_error_rate": _num(self.fast_lane_error_rate),
            "fast_lane_count": self.fast_lane_count,
            "failed": self.failed,
            "overpayment": _num(self.overpayment),
        }


@dataclass(frozen=True)
class GateRow:
    set: str
    metric: str
    champion: float | None
    challenger: float | None
    delta: float | None
    tolerance: float | None
    status: str  # ok | fail | n/a | not enough samples

    def to_json(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "metric": self.metric,
            "champion": _num(self.champion) if self.champion is not None else None,
            "challenger": _num(self.challenger) if self.challenger is not None else None,
            "delta": _num(self.delta) if self.delta is not None else None,
            "tolerance": self.tolerance,
            "status": self.status,
        }


@dataclass(frozen=True)
class GateResult:
    passed: bool
    failures: list[str]
    rows: list[GateRow]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failures": list(self.failures),
            "notes": list(self.notes),
            "rows": [r.to_json() for r in self.rows],
        }

    def table(self) -> str:
        """The gate as a plain-text table (the CLI prints it)."""
        header = ("set", "metric", "champion", "challenger", "delta", "tolerance", "status")
        lines = [header]
        for r in self.rows:
            lines.append(
                (
                    r.set,
                    r.metric,
                    _fmt(r.champion),
                    _fmt(r.challenger),
                    _fmt(r.delta, signed=True),
                    _fmt(r.tolerance),
                    r.status,
                )
            )
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        out = [
            "  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
        ]
        out.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(out)


def _fmt(x: float | None, *, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


# --------------------------------------------------------------------------------------------------
# Scoring


def _offers(
    model: DamageModel, p: np.ndarray, threshold: Decimal, lanes: frozenset[int], max_overpay_rate: Decimal
) -> np.ndarray:
    """The grade each photo would be offered under the model's fast-lane rule, or NO_OFFER."""
    thresholds = getattr(model, "fast_lane_thresholds", None)
    if thresholds is not None:
        certified = certified_threshold(thresholds, max_overpay_rate)  # the policy's own lookup
        if certified is None:
            return np.full(len(p), NO_OFFER)
        p_ge = np.cumsum(p[:, ::-1], axis=1)[:, ::-1][:, 1:]
        return offered_grades(p_ge, float(certified), sorted(lanes))
    pred = most_likely_grade(p)
    top = p[np.arange(len(p)), pred]
    fast = [
        int(g) in lanes and Decimal(str(round(float(c), CONFIDENCE_DECIMALS))) >= threshold
        for g, c in zip(pred, top, strict=True)
    ]
    return np.where(fast, pred, NO_OFFER)


def score(
    model: DamageModel,
    samples: Sequence[Sample],
    policy_threshold: Decimal,
    fast_lane_grades: Iterable[int],
    *,
    grade_fractions: Sequence[Decimal] = (Decimal(0), Decimal(0), Decimal("0.5"), Decimal(1)),
    max_overpay_rate: Decimal = Decimal("0.02"),
) -> GateMetrics:
    """The gate's metrics of `model` on `samples` (photos that cannot be decoded are skipped and
    counted in `failed`)."""
    threshold = Decimal(policy_threshold)
    lanes = frozenset(int(g) for g in fast_lane_grades)
    probs: list[list[float]] = []
    kept: list[Sample] = []
    failed = 0
    for sample, result in zip(samples, model.iter_predictions(s.image for s in samples), strict=True):
        if isinstance(result, Prediction):
            probs.append(result.grade_probs)
            kept.append(sample)
        else:
            failed += 1
    n = len(kept)
    if n == 0:
        return GateMetrics(
            n=0, auroc=math.nan, ece=math.nan, fast_lane_error_rate=0.0, fast_lane_count=0, failed=failed
        )
    p = np.asarray(probs, dtype=np.float64)
    y = np.array([s.damaged for s in kept], dtype=np.int64)
    p_damaged = np.clip(1.0 - p[:, 0], 0.0, 1.0)
    pred = most_likely_grade(p)  # ties go to the lower grade, as the policy decides
    top = p[np.arange(n), pred]
    fast = np.array(
        [
            int(g) in lanes and Decimal(str(round(float(c), CONFIDENCE_DECIMALS))) >= threshold
            for g, c in zip(pred, top, strict=True)
        ],
        dtype=bool,
    )
    wrong = np.array(
        [
            (s.grade != int(g)) if s.grade is not None else (int(g >= 1) != s.damaged)
            for s, g in zip(kept, pred, strict=True)
        ],
        dtype=bool,
    )
    count = int(fast.sum())
    offers = _offers(model, p, threshold, lanes, max_overpay_rate)
    fractions = np.array([float(f) for f in grade_fractions])
    owed = np.array(
        [fractions[s.grade] if s.grade is not None else (0.0 if s.damaged == 0 else np.nan) for s in kept]
    )
    known = np.isfinite(owed)
    paid = np.where(offers != NO_OFFER, fractions[np.clip(offers, 0, None)], 0.0)
    over = np.clip(paid - np.nan_to_num(owed), 0, None)[known]
    return GateMetrics(
        n=n,
        auroc=auroc(y, p_damaged),
        ece=expected_calibration_error(y, p_damaged),
        fast_lane_error_rate=float((fast & wrong).sum() / count) if count else 0.0,
        fast_lane_count=count,
        failed=failed,
        overpayment=float(over.mean()) if over.size else 0.0,
    )


# --------------------------------------------------------------------------------------------------
# The gate

# metric, attribute, the direction that is worse, the tolerance field
_CHECKS = (
    ("AUROC", "auroc", "lower", "auroc_tolerance"),
    ("ECE", "ece", "higher", "ece_tolerance"),
    ("fast-lane error rate", "fast_lane_error_rate", "higher", "fast_lane_error_tolerance"),
    ("overpayment", "overpayment", "higher", "overpayment_tolerance"),
)


def gate(
    champion: GateMetrics | Mapping[str, GateMetrics],
    challenger: GateMetrics | Mapping[str, GateMetrics],
    cfg: GateConfig = GateConfig(),  # noqa: B008 - frozen, so a shared default is safe
) -> GateResult:
    """Compare per set: `champion` and `challenger` are one `GateMetrics` each (one set, named
    "eval"), or mappings {set name: GateMetrics} with the same sets (e.g. "fixed", "reviewed")."""
    if isinstance(champion, GateMetrics) and isinstance(challenger, GateMetrics):
        champion, challenger = {"eval": champion}, {"eval": challenger}
    if not isinstance(champion, Mapping) or not isinstance(challenger, Mapping):
        raise TypeError("champion and challenger must both be GateMetrics or both mappings of them")
    if set(champion) != set(challenger):
        raise ValueError(f"champion sets {sorted(champion)} differ from challenger sets {sorted(challenger)}")

    rows: list[GateRow] = []
    failures: list[str] = []
    notes: list[str] = []
    for name in champion:
        a, b = champion[name], challenger[name]
        n = min(a.n, b.n)
        if n < cfg.min_samples:
            notes.append(f"{name}: not enough samples ({n} < {cfg.min_samples}); not gated on this set")
            rows.extend(
                GateRow(name, metric, getattr(a, attr), getattr(b, attr), None, getattr(cfg, tol), STATUS_FEW)
                for metric, attr, _, tol in _CHECKS
            )
            continue
        for metric, attr, worse, tol_name in _CHECKS:
            old, new, tol = float(getattr(a, attr)), float(getattr(b, attr)), float(getattr(cfg, tol_name))
            if not (math.isfinite(old) and math.isfinite(new)):
                notes.append(f"{name}: {metric} undefined on this set (n={n}); not gated on it")
                rows.append(GateRow(name, metric, old, new, None, tol, STATUS_NA))
                continue
            delta = new - old
            bad = delta < -tol if worse == "lower" else delta > tol
            if bad:
                failures.append(
                    f"{name}: {metric} {new:.4f} is {worse} than the champion's {old:.4f} "
                    f"by {abs(delta):.4f} (tolerance {tol:g}, n={n})"
                )
            rows.append(GateRow(name, metric, old, new, delta, tol, STATUS_FAIL if bad else STATUS_OK))
    return GateResult(passed=not failures, failures=failures, rows=rows, notes=notes)
