"""Policy 2026-12-v2: the exceedance rule with the model's certified threshold, and the photo gate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from claims.policy import (
    Offer,
    PhotoProblem,
    PolicyConfig,
    PolicyError,
    ReasonCode,
    Review,
    UnusablePhoto,
    certified_threshold,
    decide,
    describe,
    parse_policy,
)

D = Decimal
V2 = PolicyConfig(version="t-v2", fast_lane_rule="exceedance", max_overpay_rate=D("0.02"))


def test_offers_the_highest_grade_the_model_is_sure_of() -> None:
    # P(>=2) = 0.97, P(>=3) = 0.60: v1 would see "severe 0.60" and send to review; v2 pays structural.
    probs = [0.01, 0.02, 0.37, 0.60]
    d = decide(probs, D("300.00"), "CNY", V2, threshold=D("0.95"))
    assert isinstance(d, Offer)
    assert d.grade == 2 and d.amount == D("150.00") and d.confidence == D("0.97")
    sure = decide([0.0, 0.01, 0.02, 0.97], D("300.00"), "CNY", V2, threshold=D("0.95"))
    assert isinstance(sure, Offer) and sure.grade == 3 and sure.amount == D("300.00")


def test_no_certified_threshold_means_no_fast_lane() -> None:
    d = decide([0.0, 0.0, 0.0, 1.0], D("300.00"), "CNY", V2, threshold=None)
    assert isinstance(d, Review) and d.reasons == (ReasonCode.LOW_CONFIDENCE,)
    assert d.grade == 3


def test_intact_or_cosmetic_is_never_offered() -> None:
    d = decide([0.9, 0.08, 0.01, 0.01], D("300.00"), "CNY", V2, threshold=D("0.5"))
    assert isinstance(d, Review) and d.reasons == (ReasonCode.GRADE_NOT_FAST_LANE,)


def test_unusable_photo_goes_to_review_and_says_what_to_retake() -> None:
    bad = (UnusablePhoto(2, "p2", PhotoProblem.DARK), UnusablePhoto(3, "p3", PhotoProblem.NOT_A_PARCEL))
    d = decide([0.0, 0.0, 0.0, 1.0], D("300.00"), "CNY", V2, threshold=D("0.9"), unusable=bad)
    assert isinstance(d, Review) and d.reasons == (ReasonCode.PHOTO_UNUSABLE,)
    assert d.retake == bad
    text = describe(d)
    assert "Photo 2 is too dark: retake it in better light." in text
    assert "Photo 3 does not look like a photo of the parcel" in text


@pytest.mark.parametrize(
    ("thresholds", "rate", "want"),
    [
        ({D("0.01"): D("0.99"), D("0.02"): D("0.95"), D("0.05"): D("0.9")}, D("0.02"), D("0.95")),
        ({D("0.01"): D("0.99"), D("0.02"): None, D("0.05"): D("0.9")}, D("0.02"), D("0.99")),
        ({D("0.05"): D("0.9")}, D("0.02"), None),
        ({}, D("0.02"), None),
        (None, D("0.02"), None),
    ],
)
def test_certified_threshold_never_uses_a_looser_rate(thresholds, rate, want) -> None:
    assert certified_threshold(thresholds, rate) == want


def test_v2_policy_file_and_validation() -> None:
    from claims.policy import POLICIES_DIR

    config = parse_policy((POLICIES_DIR / "2026-12-v2.toml").read_text(encoding="utf-8"))
    assert config.fast_lane_rule == "exceedance" and config.max_overpay_rate == D("0.02")
    with pytest.raises(PolicyError, match="fast_lane_rule"):
        PolicyConfig(version="x", fast_lane_rule="argmax")
    with pytest.raises(PolicyError, match="max_overpay_rate"):
        PolicyConfig(version="x", max_overpay_rate=D("0"))


def test_most_likely_rule_is_unchanged_by_the_new_arguments() -> None:
    v1 = PolicyConfig(version="t-v1")
    probs = [0.01, 0.02, 0.37, 0.60]
    assert decide(probs, D("300.00"), "CNY", v1) == decide(probs, D("300.00"), "CNY", v1, threshold=D("0.1"))
