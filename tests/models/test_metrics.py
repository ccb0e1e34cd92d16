from __future__ import annotations

import math

import numpy as np
import pytest

from models import metrics as M

# --- AUROC / ROC ---------------------------------------------------------------------------------


def test_auroc_perfect_reversed_ties():
    y = [0, 0, 1, 1]
    assert M.auroc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert M.auroc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert M.auroc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_auroc_hand_computed_with_partial_ties():
    # Pairs (pos, neg): pos 0.8 beats both negatives (2); pos 0.4 ties neg 0.4 (0.5), beats 0.1 (1).
    y = [1, 1, 0, 0]
    assert M.auroc(y, [0.8, 0.4, 0.4, 0.1]) == pytest.approx(3.5 / 4)


def test_auroc_one_class_is_nan():
    assert math.isnan(M.auroc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(M.auroc([0, 0], [0.2, 0.5]))


def test_auroc_rejects_nan_scores():
    with pytest.raises(ValueError):
        M.auroc([0, 1], [0.2, float("nan")])


def test_roc_curve_matches_auroc_and_endpoints():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) * 0.6 + 0.4 * y, 1)  # rounded: many ties
    fpr, tpr, thr = M.roc_curve(y, score)
    assert (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.isinf(thr[0]) and np.all(np.diff(thr) < 0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(M.auroc(y, score))


# --- calibration ---------------------------------------------------------------------------------


def test_ece_zero_when_perfectly_calibrated():
    # Stated 0.25 -> 1 of 4 damaged; stated 0.75 -> 3 of 4 damaged.
    prob = [0.25] * 4 + [0.75] * 4
    y = [1, 0, 0, 0] + [1, 1, 1, 0]
    assert M.expected_calibration_error(y, prob) == pytest.approx(0.0)


def test_ece_positive_when_overconfident():
    prob = [0.95] * 10
    y = [1] * 5 + [0] * 5
    assert M.expected_calibration_error(y, prob) == pytest.approx(0.45)


def test_reliability_bins_counts_and_edges():
    bins = M.reliability_bins([0, 1, 1, 0], [0.0, 1.0, 0.51, 0.49], n_bins=2)
    assert bins.edges.tolist() == [0.0, 0.5, 1.0]
    assert bins.count.tolist() == [2, 2]  # 1.0 lands in the last bin
    assert bins.confidence.tolist() == pytest.approx([0.245, 0.755])
    assert bins.frequency.tolist() == [0.0, 1.0]
    empty = M.reliability_bins([1], [0.9], n_bins=3)
    assert empty.count.tolist() == [0, 0, 1] and np.isnan(empty.confidence[0])


def test_ece_top_label():
    probs = np.array([[0.8, 0.1, 0.05, 0.05]] * 5)
    labels = [0, 0, 0, 0, 1]  # 4 of 5 right at confidence 0.8: calibrated
    assert M.ece_top_label(labels, probs) == pytest.approx(0.0)
    assert M.ece_top_label([1] * 5, probs) == pytest.approx(0.8)


def test_brier():
    assert M.brier_score([1, 0], [1.0, 0.0]) == 0.0
    assert M.brier_score([1, 0], [0.5, 0.5]) == pytest.approx(0.25)


# --- confusion / kappa ---------------------------------------------------------------------------


def test_confusion_matrix_counts():
    cm = M.confusion_matrix([0, 0, 1, 2, 3, 3], [0, 1, 1, 2, 2, 3])
    expected = np.zeros((4, 4), dtype=int)
    expected[0, 0] = expected[0, 1] = expected[1, 1] = expected[2, 2] = expected[3, 2] = expected[3, 3] = 1
    assert cm.tolist() == expected.tolist()
    assert M.confusion_matrix([1, 0], [1, 1], n=2).tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ValueError):
        M.confusion_matrix([4], [0])


def test_quadratic_weighted_kappa():
    g = [0, 1, 2, 3, 0, 1, 2, 3]
    assert M.quadratic_weighted_kappa(g, g) == pytest.approx(1.0)
    # Reversed on a symmetric set: maximal disagreement, kappa -1.
    assert M.quadratic_weighted_kappa([0, 1, 2, 3], [3, 2, 1, 0]) == pytest.approx(-1.0)
    # Off by one is penalised less than off by three.
    near = M.quadratic_weighted_kappa(g, [1, 1, 2, 3, 0, 2, 2, 3])
    far = M.quadratic_weighted_kappa(g, [3, 1, 2, 3, 0, 1, 2, 0])
    assert 0 < far < near < 1
    assert math.isnan(M.quadratic_weighted_kappa([2, 2], [2, 2]))  # undefined, not "1"


# --- summaries -----------------------------------------------------------------------------------


def test_binary_metrics():
    y = [0, 0, 0, 1, 1]
    p = [0.1, 0.6, 0.2, 0.9, 0.4]
    m = M.binary_metrics(y, p)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (1, 1, 1, 2)
    assert m["count"] == 5 and m["positives"] == 2 and m["negatives"] == 3
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(1 / 2)
    assert m["recall"] == pytest.approx(1 / 2)
    assert m["fpr"] == pytest.approx(1 / 3)
    assert m["auroc"] == pytest.approx(M.auroc(y, p))
    assert 0 <= m["ece"] <= 1 and 0 <= m["brier"] <= 1
    only_intact = M.binary_metrics([0, 0], [0.7, 0.2])
    assert math.isnan(only_intact["auroc"]) and math.isnan(only_intact["recall"])
    assert only_intact["fpr"] == 0.5


def test_grade_metrics():
    probs = np.eye(4)[[0, 1, 2, 3, 3]] * 0.7 + 0.075
    m = M.grade_metrics([0, 1, 2, 3, 1], probs)
    assert m["count"] == 5
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["mean_abs_error"] == pytest.approx(2 / 5)
    assert m["confusion"][1] == [0, 1, 0, 1]
    assert m["qwk"] < 1
    perfect = M.grade_metrics([0, 1, 2, 3], np.eye(4))
    assert perfect["qwk"] == pytest.approx(1.0) and perfect["accuracy"] == 1.0
    assert M.grade_metrics([], np.zeros((0, 4)))["count"] == 0


# --- uncertainty ---------------------------------------------------------------------------------


def test_bootstrap_ci_brackets_point_estimate_and_is_deterministic():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 120)
    score = rng.random(120) + 0.5 * y
    point = M.auroc(y, score)
    low, high = M.bootstrap_ci(M.auroc, y, score, n=300, seed=0)
    assert low < point < high
    assert high - low < 0.4
    assert M.bootstrap_ci(M.auroc, y, score, n=300, seed=0) == (low, high)


def test_bootstrap_ci_undefined_metric_gives_nan():
    low, high = M.bootstrap_ci(M.auroc, np.zeros(10, dtype=int), np.linspace(0, 1, 10), n=20)
    assert math.isnan(low) and math.isnan(high)


def test_wilson_interval():
    low, high = M.wilson_interval(0, 40)
    assert low == 0.0 and 0.08 < high < 0.10  # zero observed errors is not "exactly 0%"
    low, high = M.wilson_interval(10, 100)
    assert low < 0.1 < high
    assert all(math.isnan(v) for v in M.wilson_interval(0, 0))
