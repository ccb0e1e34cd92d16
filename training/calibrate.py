"""Temperature scaling fitted on the validation split.

Why: the policy pays out instantly only when the model is confident, so "0.95" must mean right
about 95% of the time. One temperature T divides all cut-point logits; it changes no ranking
(AUROC is unchanged) and only makes the stated probabilities honest. T is saved in the model.
"""

from __future__ import annotations

import numpy as np


def _nll(logits: np.ndarray, targets: np.ndarray, mask: np.ndarray, t: float) -> float:
    z = logits / t
    # log(1 + exp(-|z|)) form: stable for large |z|
    log_p = -np.logaddexp(0.0, -z)
    log_not_p = -np.logaddexp(0.0, z)
    ll = targets * log_p + (1.0 - targets) * log_not_p
    return float(-(ll * mask).sum() / mask.sum())


def ordinal_targets_np(grade: np.ndarray, damaged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of `training.networks.ordinal_targets` (grade -1 = binary label only)."""
    grade = np.asarray(grade)
    ks = np.arange(1, 4)
    graded = grade >= 0
    targets = (grade[:, None] >= ks).astype(np.float64)
    targets[~graded, 0] = np.asarray(damaged)[~graded]
    targets[~graded, 1:] = 0.0
    mask = np.ones_like(targets)
    mask[~graded, 1:] = 0.0
    return targets, mask


def fit_temperature(
    logits: np.ndarray, grade: np.ndarray, damaged: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The T minimising validation NLL: a coarse log-grid, then golden-section refinement.

    A 1-D convex-ish problem: a grid search is robust to the flat regions where LBFGS can stall.
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets, mask = ordinal_targets_np(grade, damaged)
    grid = np.exp(np.linspace(np.log(bounds[0]), np.log(bounds[1]), 81))
    losses = [_nll(logits, targets, mask, t) for t in grid]
    i = int(np.argmin(losses))
    lo, hi = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, len(grid) - 1)])
    phi = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if _nll(logits, targets, mask, np.exp(a)) < _nll(logits, targets, mask, np.exp(b)):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))
