"""The fast lane's threshold choice (Learn-then-Test) and its money figures."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from models.fastlane import (
    NO_OFFER,
    binomial_p_value,
    declared_values,
    ltt_threshold,
    money_report,
    offered_grades,
)


def test_offered_grade_is_the_highest_grade_sure_enough() -> None:
    p_ge = np.array(
        [
            [0.99, 0.97, 0.95],  # severe, sure
            [0.99, 0.97, 0.60],  # severe unsure: structural is offered
            [0.99, 0.70, 0.10],  # nothing sure enough
            [0.10, 0.02, 0.01],  # intact
        ]
    )
    assert offered_grades(p_ge, 0.9).tolist() == [3, 2, NO_OFFER, NO_OFFER]
    assert offered_grades(p_ge, 0.5).tolist() == [3, 3, 2, NO_OFFER]


def test_binomial_p_value_needs_enough_offers_to_certify() -> None:
    # 0 errors in n offers certifies 2% at delta 0.1 only from n >= 114: (0.98)^114 < 0.1
    assert binomial_p_value(0, 113, 0.02) > 0.1
    assert binomial_p_value(0, 114, 0.02) <= 0.1
    assert binomial_p_value(0, 0, 0.02) == 1.0


def _calibration(n: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic calibrated-ish scores: true grades 0-3 and exceedance probabilities around them."""
    rng = np.random.default_rng(seed)
    grade = rng.integers(0, 4, n)
    latent = grade + rng.normal(0, noise, n)
    p_ge = 1 / (1 + np.exp(-(latent[:, None] - np.array([0.5, 1.5, 2.5])) * 4))
    return p_ge, grade


def test_ltt_threshold_keeps_overpay_share_below_alpha_on_fresh_data() -> None:
    """The guarantee, checked by simulation: over many calibration draws, the chosen threshold's
    overpay share on a large fresh sample exceeds alpha in at most about delta of the draws."""
    alpha, delta = 0.05, 0.1
    exceed = 0
    chosen = 0
    test_p, test_g = _calibration(20000, 999, 0.6)
    for seed in range(40):
        p, g = _calibration(1500, seed, 0.6)
        choice = ltt_threshold(p, g, np.ones(len(g), bool), alpha=alpha, delta=delta)
        if choice.threshold is None:
            continue
        chosen += 1
        off = offered_grades(test_p, choice.threshold)
        made = off != NO_OFFER
        share = ((off > test_g) & made).sum() / made.sum()
        exceed += share > alpha
        assert choice.offers > 0 and choice.upper_bound >= choice.errors / choice.offers
    assert chosen >= 30
    assert exceed / chosen <= delta + 0.1


def test_ltt_counts_unusable_photos_as_errors_and_can_refuse() -> None:
    p, g = _calibration(300, 1, 0.6)
    ok = ltt_threshold(p, g, np.ones(len(g), bool), alpha=0.05)
    bad = ltt_threshold(p, g, np.zeros(len(g), bool), alpha=0.05)  # every offer would be wrong
    assert ok.threshold is not None
    assert bad.threshold is None and bad.offers == 0
    tiny = ltt_threshold(p[:20], g[:20], np.ones(20, bool), alpha=0.02)
    assert tiny.threshold is None  # 20 photos can never certify 2%


def test_money_report() -> None:
    offered = np.array([3, 2, NO_OFFER, 2, 3])
    true = np.array([2, 2, 3, 0, 3])
    values = np.array([100.0, 200.0, 300.0, 400.0, 500.0])
    r = money_report(offered, true, values, [Decimal(0), Decimal(0), Decimal("0.5"), Decimal(1)])
    assert r.offers == 4
    assert r.paid_fast_lane == pytest.approx(100 + 100 + 200 + 500)
    assert r.owed_at_true_grade == pytest.approx(50 + 100 + 0 + 500)
    assert r.overpayment == pytest.approx(50 + 200)
    assert r.underpayment == 0
    assert r.overpaid_offers == 2 and r.intact_offered == 1 and r.intact_claims == 1
    assert r.damaged_settled_instantly == 3 and r.damaged_claims == 4
    assert r.as_dict()["damaged_settled_share"] == pytest.approx(0.75)


def test_declared_values_are_whole_and_below_the_ceiling() -> None:
    v = declared_values(5000, 3)
    assert (v >= 1).all() and (v < 2000).all() and (v == np.round(v)).all()
    assert 200 < np.median(v) < 400
