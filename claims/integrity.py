"""Claim integrity: the checks a carrier's fraud team expects before money moves instantly.

An instant payout is only safe for a real parcel, at its real insured value, with photos of that
parcel. Each check here yields a `ReasonCode`; any reason keeps the claim out of the fast lane and a
person decides (the adjuster sees the code and the evidence, the customer a plain sentence, see
`claims.policy.describe`). None of them denies: the machine may approve, it never denies.

| reason                    | when                                                                   |
|---------------------------|------------------------------------------------------------------------|
| shipment_unverified       | no shipment record for the tracking number (the feed may lag)          |
| value_above_insured       | the app's value is above the shipment's (or in another currency)       |
| not_delivered             | the shipment is not delivered                                          |
| outside_claim_window      | filed more than `claim_window_days` after delivery                     |
| duplicate_parcel          | another claim exists on the same tracking number                       |
| parcel_already_paid       | a claim on the same tracking number was paid                           |
| photo_reused              | a photo is the same as, or a near-duplicate of, another claim's photo  |
| photo_predates_delivery   | EXIF capture time before delivery (missing EXIF is never a reason)     |
| screenshot                | a photo looks like a screenshot                                        |
| repeat_claimant           | more than `repeat_claimant_max_claims` claims in `repeat_claimant_days` |

Pure: facts in, reasons out. Gathering the facts (queries, hashes) is `services.integrity`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from claims.policy import Decision, Offer, PolicyConfig, ReasonCode, Review

# A capture time without a zone is the phone's local clock read as UTC: it may be this far off.
UNKNOWN_ZONE_SLACK = timedelta(hours=14)
# Clocks of phones and of the carrier's scanners are not in step: minutes either way are normal.
CLOCK_SLACK = timedelta(minutes=30)


class ShipmentStatus(StrEnum):
    """Where a parcel stands in the carrier's systems."""

    CREATED = "created"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    RETURNED = "returned"
    LOST = "lost"


@dataclass(frozen=True)
class ShipmentFacts:
    declared_value: Decimal
    currency: str
    status: ShipmentStatus
    delivered_at: datetime | None


@dataclass(frozen=True)
class PhotoFacts:
    """What one photo of the claim says about itself (1-based `position`)."""

    position: int
    taken_at: datetime | None = None
    zone_known: bool = False
    screenshot: bool = False


@dataclass(frozen=True)
class PhotoMatch:
    """A photo of this claim (1-based `position`) that matches a photo of `other_claim_id`."""

    position: int
    other_claim_id: str
    other_photo_id: str
    distance: int


@dataclass(frozen=True)
class ParcelFacts:
    """Everything the checks look at, gathered when the claim is decided."""

    filed_at: datetime
    currency: str
    claimed_value: Decimal | None
    shipment: ShipmentFacts | None
    other_claims_on_parcel: int = 0
    parcel_paid_before: bool = False
    photo_matches: tuple[PhotoMatch, ...] = ()
    photos: tuple[PhotoFacts, ...] = ()
    # This customer's claims filed within the policy's repeat_claimant_days, this one included.
    recent_claims: int = 1


def payout_basis(
    claimed: Decimal | None, currency: str, shipment: ShipmentFacts | None
) -> tuple[Decimal, str]:
    """The value (and currency) a payout is computed on: the shipment's insured value, or the
    customer's lower figure when they claim less; without a shipment, the customer's figure (such a
    claim never takes the fast lane). Raises ValueError when there is neither."""
    if shipment is None:
        if claimed is None:
            raise ValueError("no declared value: neither a shipment record nor a value from the customer")
        return claimed, currency
    if claimed is not None and currency == shipment.currency and claimed < shipment.declared_value:
        return claimed, currency
    return shipment.declared_value, shipment.currency


def _predates(photo: PhotoFacts, delivered_at: datetime) -> bool:
    if photo.taken_at is None:
        return False  # no EXIF: normal, never a reason by itself
    slack = CLOCK_SLACK if photo.zone_known else UNKNOWN_ZONE_SLACK
    return photo.taken_at < delivered_at - slack


def integrity_reasons(facts: ParcelFacts, config: PolicyConfig) -> tuple[ReasonCode, ...]:
    """Every integrity check that fails, in ReasonCode order."""
    reasons: set[ReasonCode] = set()
    shipment = facts.shipment
    if shipment is None:
        reasons.add(ReasonCode.SHIPMENT_UNVERIFIED)
    else:
        if facts.claimed_value is not None and (
            facts.currency != shipment.currency or facts.claimed_value > shipment.declared_value
        ):
            reasons.add(ReasonCode.VALUE_ABOVE_INSURED)
        if shipment.status != ShipmentStatus.DELIVERED or shipment.delivered_at is None:
            reasons.add(ReasonCode.NOT_DELIVERED)
        else:
            window = config.claim_window_days
            if window is not None and facts.filed_at > shipment.delivered_at + timedelta(days=window):
                reasons.add(ReasonCode.OUTSIDE_CLAIM_WINDOW)
            if any(_predates(p, shipment.delivered_at) for p in facts.photos):
                reasons.add(ReasonCode.PHOTO_PREDATES_DELIVERY)
    if facts.other_claims_on_parcel > 0:
        reasons.add(ReasonCode.DUPLICATE_PARCEL)
    if facts.parcel_paid_before:
        reasons.add(ReasonCode.PARCEL_ALREADY_PAID)
    if facts.photo_matches:
        reasons.add(ReasonCode.PHOTO_REUSED)
    if any(p.screenshot for p in facts.photos):
        reasons.add(ReasonCode.SCREENSHOT)
    limit = config.repeat_claimant_max_claims
    if limit is not None and facts.recent_claims > limit:
        reasons.add(ReasonCode.REPEAT_CLAIMANT)
    return tuple(r for r in ReasonCode if r in reasons)


def with_integrity(decision: Decision, reasons: Sequence[ReasonCode]) -> Decision:
    """The decision once the integrity checks are in: an Offer with any reason becomes a Review of the
    same grade; a Review gains the reasons (every reason once, in ReasonCode order)."""
    if not reasons:
        return decision
    if isinstance(decision, Offer):
        return Review(decision.grade, decision.confidence, tuple(reasons), decision.policy_version)
    merged = set(decision.reasons) | set(reasons)
    return Review(
        decision.grade,
        decision.confidence,
        tuple(r for r in ReasonCode if r in merged),
        decision.policy_version,
        decision.retake,
    )
