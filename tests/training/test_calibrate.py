import numpy as np

from training.calibrate import fit_temperature


def test_temperature_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    n = 4000
    true_logit = rng.normal(0, 2, size=(n, 1)) - np.array([[0.0, 1.5, 3.0]])
    y = (rng.uniform(size=(n, 3)) < 1 / (1 + np.exp(-true_logit))).astype(int)
    grade = np.where(y[:, 0] == 0, 0, y.sum(1))  # consistent enough for a check of T
    overconfident = true_logit * 2.5
    t = fit_temperature(overconfident, grade, (grade > 0).astype(int))
    assert 1.8 < t < 3.2


def test_temperature_is_about_one_when_calibrated():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, size=(5000, 1)).repeat(3, axis=1)
    damaged = (rng.uniform(size=5000) < 1 / (1 + np.exp(-logits[:, 0]))).astype(int)
    t = fit_temperature(logits, np.full(5000, -1), damaged)
    assert 0.85 < t < 1.15
