"""Metrics for the damage model: pure numpy, no I/O, so training, evaluation and tests share them.

Why these and not just accuracy. A claim decision is "damaged or not" (and then "how badly"):
- AUROC says whether the model *ranks* damaged parcels above intact ones, independent of where the
  policy puts its threshold. It is the first number to look at when comparing models.
- The false positive rate at the operating threshold is what a shipper pays for: every intact parcel
  flagged as damaged is a payout (or a review) that should not have happened.
- Calibration (ECE, reliability bins, Brier) matters because the payout policy reads `p_damaged` as a
  probability; a model that says 0.9 must be right about 90% of the time, or thresholds and expected
  costs computed from it are wrong.
- Grade metrics (accuracy, mean absolute error, quadratic weighted kappa) judge the severity used to
  size the payout; grades are ordinal, so being off by one is much better than being off by three.
- Small subsets (one source, one parcel type) give noisy numbers; `bootstrap_ci` and
  `wilson_interval` attach an honest 95% interval to them.

Conventions: labels are integer arrays, probabilities float arrays; a metric that is undefined for the
input (e.g. AUROC with one class, precision with no predicted positives) is NaN, never a made-up 0/1.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

NUM_GRADES = 4  # kept in sync with models.grades.NUM_GRADES; metrics stay free of model imports


def _labels(y: Any, name: str = "y_true") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr.astype(np.int64)


def _scores(s: Any, n: int, name: str = "score") -> np.ndarray:
    arr = np.asarray(s, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _binary(y: Any) -> np.ndarray:
    arr = _labels(y)
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError("binary labels must be 0 or 1")
    return arr


def _ratio(num: float | np.integer, den: float | np.integer) -> float:
    return float(num) / float(den) if den else float("nan")


# --- ranking -------------------------------------------------------------------------------------


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the average of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new_group = np.concatenate(([True], xs[1:] != xs[:-1]))
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], len(xs))  # exclusive
    average = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = average[group]
    return ranks


def auroc(y_true: Any, score: Any) -> float:
    """Area under the ROC curve: P(score of a random damaged parcel > score of a random intact one).

    Why it matters: it measures how well the model separates damaged from intact photos at every
    threshold at once, so it compares models before anyone picks the policy's operating point.
    Computed as the Mann-Whitney U statistic with average ranks, so ties count one half.
    NaN when only one class is present (the question has no answer there).
    """
    y = _binary(y_true)
    s = _scores(score, len(y))
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points (fpr, tpr, thresholds), one per distinct score, predicting positive for score >= t.

    Why it matters: the curve shows the trade-off the policy chooses from: how many damaged parcels
    are caught (tpr) for each share of intact parcels wrongly flagged (fpr). The first point is
    (0, 0) at threshold +inf. Tied scores form one (diagonal) step, so the trapezoidal area under
    this curve equals `auroc`. With one class present, the undefined axis is all NaN.
    """
    y = _binary(y_true)
    s = _scores(score, len(y))
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.array([], dtype=int)
    tps = np.cumsum(y)[last_of_value] if len(s) else np.array([])
    fps = (last_of_value + 1) - tps
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0.0, tps] / n_pos if n_pos else np.full(len(tps) + 1, np.nan)
        fpr = np.r_[0.0, fps] / n_neg if n_neg else np.full(len(fps) + 1, np.nan)
    thresholds = np.r_[np.inf, s[last_of_value]] if len(s) else np.array([np.inf])
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds.astype(np.float64)


# --- calibration ---------------------------------------------------------------------------------


class ReliabilityBins(NamedTuple):
    """Per equal-width bin over [0, 1]: mean stated probability, observed frequency, count.

    Empty bins have count 0 and NaN confidence/frequency.
    """

    edges: np.ndarray  # (n_bins + 1,)
    confidence: np.ndarray  # (n_bins,) mean predicted probability in the bin
    frequency: np.ndarray  # (n_bins,) observed frequency of the outcome (accuracy for top-label)
    count: np.ndarray  # type: ignore[assignment]  # (n_bins,) int; shadows tuple.count, as intended


def reliability_bins(y_true: Any, prob: Any, n_bins: int = 15) -> ReliabilityBins:
    """Bin predictions by stated probability and compare with what actually happened.

    Why it matters: this is the data behind the reliability diagram; a calibrated model's points lie
    on the diagonal. `y_true` is the 0/1 outcome (damaged, or "top label was correct").
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    y = _binary(y_true)
    p = _scores(prob, len(y), "prob")
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.floor(p * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=p, minlength=n_bins)
    hit_sum = np.bincount(idx, weights=y.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(count > 0, conf_sum / count, np.nan)
        frequency = np.where(count > 0, hit_sum / count, np.nan)
    return ReliabilityBins(edges, confidence, frequency, count.astype(np.int64))


def _ece_from_bins(bins: ReliabilityBins) -> float:
    total = bins.count.sum()
    if total == 0:
        return float("nan")
    filled = bins.count > 0
    gaps = np.abs(bins.confidence[filled] - bins.frequency[filled])
    return float((bins.count[filled] * gaps).sum() / total)


def expected_calibration_error(y_true: Any, prob: Any, n_bins: int = 15) -> float:
    """ECE of a binary probability: count-weighted mean |stated probability - observed frequency|.

    Why it matters: the policy turns `p_damaged` into money; an ECE of 0.08 means stated
    probabilities are, on average, 8 points away from how often parcels really are damaged.
    Equal-width bins over [0, 1]; NaN on empty input.
    """
    return _ece_from_bins(reliability_bins(y_true, prob, n_bins))


def ece_top_label(grade_true: Any, grade_probs: Any, n_bins: int = 15) -> float:
    """Top-label ECE for grades: confidence = max probability, correct = argmax equals the label.

    Why it matters: the review console shows the grade and its probability; this says whether
    "cosmetic, 80%" is right about 80% of the time.
    """
    g = _labels(grade_true, "grade_true")
    probs = np.asarray(grade_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != len(g):
        raise ValueError(f"grade_probs must have shape ({len(g)}, k), got {probs.shape}")
    if len(g) == 0:
        return float("nan")
    correct = (probs.argmax(axis=1) == g).astype(np.int64)
    return expected_calibration_error(correct, probs.max(axis=1), n_bins)


def brier_score(y_true: Any, prob: Any) -> float:
    """Mean squared error of the probability: rewards being both right and calibrated (lower is better)."""
    y = _binary(y_true)
    p = _scores(prob, len(y), "prob")
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


# --- confusion and agreement ---------------------------------------------------------------------


def confusion_matrix(true: Any, pred: Any, n: int = NUM_GRADES) -> np.ndarray:
    """(n, n) counts; rows are the true class, columns the predicted class.

    Why it matters: it shows *which* mistakes happen; calling a severe crush "cosmetic" underpays a
    customer, calling a scuff "severe" overpays, and a single accuracy number hides the difference.
    """
    t = _labels(true, "true")
    p = _labels(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(f"true and pred differ in shape: {t.shape} vs {p.shape}")
    if t.size and (t.min() < 0 or t.max() >= n or p.min() < 0 or p.max() >= n):
        raise ValueError(f"labels must lie in 0..{n - 1}")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n).astype(np.int64)


def quadratic_weighted_kappa(true: Any, pred: Any, n: int = NUM_GRADES) -> float:
    """Cohen's kappa with quadratic weights: agreement on an ordinal scale, corrected for chance.

    Why it matters: grades are ordered, so predicting 2 for a 3 should cost far less than predicting
    0 for a 3; QWK is 1 for perfect agreement, 0 for chance level. NaN when it is undefined (every
    label and prediction is the same single grade, so chance agreement is already perfect).
    """
    cm = confusion_matrix(true, pred, n).astype(np.float64)
    total = cm.sum()
    if total == 0:
        return float("nan")
    i, j = np.indices((n, n))
    weights = (i - j) ** 2 / max((n - 1) ** 2, 1)
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / total
    den = (weights * expected).sum()
    if den == 0:
        return float("nan")
    return float(1.0 - (weights * cm).sum() / den)


# --- summary metrics -----------------------------------------------------------------------------


def false_positive_rate(y: Any, p_damaged: Any, threshold: float = 0.5) -> float:
    """Share of intact parcels (y == 0) with p_damaged >= threshold: wrongly flagged as damaged."""
    yy = _binary(y)
    p = _scores(p_damaged, len(yy), "p_damaged")
    neg = yy == 0
    return _ratio(np.count_nonzero(p[neg] >= threshold), np.count_nonzero(neg))


def binary_metrics(y: Any, p_damaged: Any, threshold: float = 0.5) -> dict[str, float | int]:
    """Damaged-vs-intact metrics at one threshold (predict damaged when p_damaged >= threshold).

    Why these: accuracy is the headline; precision is how many flagged parcels really are damaged;
    recall is how many damaged parcels get paid without a fight; the false positive rate is the share
    of intact parcels wrongly paid or sent to review; AUROC is threshold-free ranking quality; ECE and
    Brier say whether `p_damaged` can be read as a probability by the policy.
    """
    yy = _binary(y)
    p = _scores(p_damaged, len(yy), "p_damaged")
    pred = p >= threshold
    pos = yy == 1
    tp = int(np.count_nonzero(pred & pos))
    fp = int(np.count_nonzero(pred & ~pos))
    fn = int(np.count_nonzero(~pred & pos))
    tn = int(np.count_nonzero(~pred & ~pos))
    n = len(yy)
    return {
        "count": n,
        "positives": int(pos.sum()),
        "negatives": int(n - pos.sum()),
        "threshold": float(threshold),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "accuracy": _ratio(tp + tn, n),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "fpr": _ratio(fp, fp + tn),
        "auroc": auroc(yy, p),
        "ece": expected_calibration_error(yy, p) if n else float("nan"),
        "brier": brier_score(yy, p),
    }


def grade_metrics(grade_true: Any, grade_probs: Any) -> dict[str, Any]:
    """Severity metrics over graded rows; the predicted grade is the most likely one.

    Why these: accuracy is the share graded exactly right; mean absolute error is how many grades off
    the model is on average (ordinal mistakes of different size cost differently); quadratic weighted
    kappa is chance-corrected ordinal agreement; top-label ECE checks the stated grade confidence;
    the confusion matrix (rows true, columns predicted) shows where payouts would go wrong.
    """
    g = _labels(grade_true, "grade_true")
    probs = np.asarray(grade_probs, dtype=np.float64)
    if probs.shape != (len(g), NUM_GRADES):
        raise ValueError(f"grade_probs must have shape ({len(g)}, {NUM_GRADES}), got {probs.shape}")
    if len(g) == 0:
        return {
            "count": 0,
            "accuracy": float("nan"),
            "mean_abs_error": float("nan"),
            "qwk": float("nan"),
            "ece_top_label": float("nan"),
            "confusion": np.zeros((NUM_GRADES, NUM_GRADES), dtype=int).tolist(),
        }
    pred = probs.argmax(axis=1)
    return {
        "count": len(g),
        "accuracy": float(np.mean(pred == g)),
        "mean_abs_error": float(np.mean(np.abs(pred - g))),
        "qwk": quadratic_weighted_kappa(g, pred),
        "ece_top_label": ece_top_label(g, probs),
        "confusion": confusion_matrix(g, pred).tolist(),
    }


# --- uncertainty ---------------------------------------------------------------------------------


def bootstrap_ci(
    fn: Callable[..., float], *arrays: Any, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of `fn(*arrays)`, resampling rows (axis 0) with replacement.

    Why it matters: a per-source AUROC from 60 photos can move by 0.1 between two equally good
    models; the interval says how much of a difference is noise. Resamples where `fn` is undefined
    (NaN, e.g. a resample with one class) are dropped; (NaN, NaN) if none is defined.
    Deterministic for a given seed.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    arrs = [np.asarray(a) for a in arrays]
    size = len(arrs[0])
    if any(len(a) != size for a in arrs):
        raise ValueError("all arrays must have the same length")
    if size == 0 or n < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.empty(n, dtype=np.float64)
    for k in range(n):
        idx = rng.integers(0, size, size)
        values[k] = fn(*(a[idx] for a in arrs))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion such as a false positive rate k / n.

    Why it matters: on a small, all-intact subset with 0 false positives out of 40, a bootstrap
    interval collapses to [0, 0]; Wilson still says "up to about 9%", which is the honest answer.
    """
    if trials <= 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= trials:
        raise ValueError("successes must lie in 0..trials")
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    phat = successes / trials
    den = 1.0 + z * z / trials
    centre = (phat + z * z / (2 * trials)) / den
    half = z * np.sqrt(phat * (1 - phat) / trials + z * z / (4 * trials * trials)) / den
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no float crumbs
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return float(low), float(high)
