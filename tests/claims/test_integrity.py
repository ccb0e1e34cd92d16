"""The integrity checks, pure: facts in, reason codes out (`claims.integrity`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from claims.integrity import (
    ParcelFacts,
    PhotoFacts,
    PhotoMatch,
    ShipmentFacts,
    ShipmentStatus,
    integrity_reasons,
    payout_basis,
    with_integrity,
)
from claims.policy import Offer, OfferOption, PolicyConfig, ReasonCode, Review

DELIVERED = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SHIPMENT = ShipmentFacts(Decimal("300.00"), "CNY", ShipmentStatus.DELIVERED, DELIVERED)
CLEAN = ParcelFacts(
    filed_at=DELIVERED + timedelta(days=1), currency="CNY", claimed_value=None, shipment=SHIPMENT
)
POLICY = PolicyConfig(version="t", claim_window_days=14, repeat_claimant_max_claims=3)


def test_a_clean_claim_has_no_reason() -> None:
    assert integrity_reasons(CLEAN, POLICY) == ()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"shipment": None}, ReasonCode.SHIPMENT_UNVERIFIED),
        ({"claimed_value": Decimal("300.01")}, ReasonCode.VALUE_ABOVE_INSURED),
        ({"currency": "USD", "claimed_value": Decimal("10.00")}, ReasonCode.VALUE_ABOVE_INSURED),
        (
            {"shipment": replace(SHIPMENT, status=ShipmentStatus.IN_TRANSIT, delivered_at=None)},
            ReasonCode.NOT_DELIVERED,
        ),
        ({"filed_at": DELIVERED + timedelta(days=14, seconds=1)}, ReasonCode.OUTSIDE_CLAIM_WINDOW),
        ({"other_claims_on_parcel": 1}, ReasonCode.DUPLICATE_PARCEL),
        ({"parcel_paid_before": True}, ReasonCode.PARCEL_ALREADY_PAID),
        ({"photo_matches": (PhotoMatch(1, "c", "p", 0),)}, ReasonCode.PHOTO_REUSED),
        (
            {"photos": (PhotoFacts(1, DELIVERED - timedelta(hours=1), zone_known=True),)},
            ReasonCode.PHOTO_PREDATES_DELIVERY,
        ),
        ({"photos": (PhotoFacts(1, DELIVERED - timedelta(hours=15)),)}, ReasonCode.PHOTO_PREDATES_DELIVERY),
        ({"photos": (PhotoFacts(1, screenshot=True),)}, ReasonCode.SCREENSHOT),
        ({"recent_claims": 4}, ReasonCode.REPEAT_CLAIMANT),
    ],
)
def test_each_check_gives_its_reason(change: dict, reason: ReasonCode) -> None:
    assert integrity_reasons(replace(CLEAN, **change), POLICY) == (reason,)


@pytest.mark.parametrize(
    "change",
    [
        {"claimed_value": Decimal("300.00")},  # the insured value itself
        {"claimed_value": Decimal("120.00")},  # less than insured: the customer's call
        {"filed_at": DELIVERED + timedelta(days=14)},  # the last moment of the window
        {"photos": (PhotoFacts(1, None),)},  # no EXIF is never a reason by itself
        {"photos": (PhotoFacts(1, DELIVERED - timedelta(hours=13)),)},  # no zone: 14 hours of slack
        {"photos": (PhotoFacts(1, DELIVERED - timedelta(minutes=20), zone_known=True),)},  # clock skew
        {"recent_claims": 3},
    ],
)
def test_honest_edges_pass(change: dict) -> None:
    assert integrity_reasons(replace(CLEAN, **change), POLICY) == ()


def test_knobs_left_out_check_nothing() -> None:
    late_and_busy = replace(CLEAN, filed_at=DELIVERED + timedelta(days=400), recent_claims=99)
    assert integrity_reasons(late_and_busy, PolicyConfig(version="old")) == ()


def test_reasons_come_in_reason_code_order() -> None:
    facts = replace(CLEAN, recent_claims=9, shipment=None, photo_matches=(PhotoMatch(1, "c", "p", 2),))
    assert integrity_reasons(facts, POLICY) == (
        ReasonCode.SHIPMENT_UNVERIFIED,
        ReasonCode.PHOTO_REUSED,
        ReasonCode.REPEAT_CLAIMANT,
    )


def test_payout_basis_never_exceeds_the_insured_value() -> None:
    assert payout_basis(None, "CNY", SHIPMENT) == (Decimal("300.00"), "CNY")
    assert payout_basis(Decimal("999.00"), "CNY", SHIPMENT) == (Decimal("300.00"), "CNY")
    assert payout_basis(Decimal("120.00"), "CNY", SHIPMENT) == (Decimal("120.00"), "CNY")
    assert payout_basis(Decimal("50.00"), "USD", SHIPMENT) == (Decimal("300.00"), "CNY")
    assert payout_basis(Decimal("80.00"), "CNY", None) == (Decimal("80.00"), "CNY")
    with pytest.raises(ValueError):
        payout_basis(None, "CNY", None)


def test_an_offer_with_a_finding_becomes_a_review_and_a_review_gains_it() -> None:
    offer = Offer(
        2, Decimal("0.95"), Decimal("150.00"), "CNY", (OfferOption("cash", Decimal("150.00"), "x"),), "t"
    )
    assert with_integrity(offer, ()) is offer
    review = with_integrity(offer, (ReasonCode.PHOTO_REUSED,))
    assert isinstance(review, Review)
    assert (review.grade, review.confidence, review.reasons) == (
        2,
        Decimal("0.95"),
        (ReasonCode.PHOTO_REUSED,),
    )
    merged = with_integrity(
        Review(1, Decimal("0.5"), (ReasonCode.LOW_CONFIDENCE,), "t"),
        (ReasonCode.SCREENSHOT, ReasonCode.LOW_CONFIDENCE),
    )
    assert merged.reasons == (ReasonCode.LOW_CONFIDENCE, ReasonCode.SCREENSHOT)
