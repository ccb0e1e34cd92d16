"""Gather the facts the integrity checks (`claims.integrity`) need for one claim, and the evidence
the adjuster is shown beside the reasons.

Called inside the transaction that records the claim's decision (the assessment's transaction B,
under the claim's row lock), so the checks see every claim and photo committed before it. Two claims
on one parcel, or with one photo, filed at the same moment cannot both miss each other: each is
committed before its own assessment starts, so the later of the two assessments sees the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from claims.integrity import (
    ParcelFacts,
    PhotoFacts,
    PhotoMatch,
    ShipmentFacts,
    ShipmentStatus,
    integrity_reasons,
    payout_basis,
)
from claims.money import amount_text
from claims.policy import PolicyConfig, ReasonCode
from models.fingerprints import MATCH_DISTANCE
from storage import claims as claim_rows
from storage import photos as photo_rows
from storage import shipments as shipment_rows
from storage.tables import Claim, Shipment


def shipment_facts(shipment: Shipment | None) -> ShipmentFacts | None:
    if shipment is None:
        return None
    return ShipmentFacts(
        declared_value=shipment.declared_value,
        currency=shipment.currency,
        status=ShipmentStatus(shipment.status),
        delivered_at=shipment.delivered_at,
    )


@dataclass(frozen=True)
class Findings:
    reasons: tuple[ReasonCode, ...]
    facts: ParcelFacts
    evidence: dict[str, Any]


def photo_matches(session: Session, claim: Claim) -> list[PhotoMatch]:
    """This claim's photos that are the same as, or near-duplicates of, another claim's photos."""
    photos = [p for p in claim.photos if p.hashes]
    queries = []
    for photo in photos:
        hashes = [h.value for h in photo.hashes]
        whole = [hashes[0]] + ([photo.mirror_hash] if photo.mirror_hash is not None else [])
        queries.append(photo_rows.HashQuery(whole, hashes[1:]))
    found = photo_rows.similar_photos_many(
        session, queries, max_distance=MATCH_DISTANCE, exclude_claim_id=claim.id
    )
    return [
        PhotoMatch(photo.position, h.claim_id, h.photo_id, h.distance)
        for photo, hits in zip(photos, found, strict=True)
        for h in hits
    ]


def gather(session: Session, claim: Claim, policy: PolicyConfig, now: datetime) -> Findings:
    """The integrity reasons for `claim` as the database stands now, with their evidence."""
    shipment = shipment_rows.get(session, claim.tracking_number)
    others = claim_rows.other_claims_on_parcel(session, claim.tracking_number, claim.id)
    matches = photo_matches(session, claim)
    since = (claim.created_at or now) - timedelta(days=policy.repeat_claimant_days)
    history = claim_rows.customer_claims_since(session, claim.customer_id, since)
    facts = ParcelFacts(
        filed_at=claim.created_at or now,
        currency=claim.currency,
        claimed_value=claim.claimed_value,
        shipment=shipment_facts(shipment),
        other_claims_on_parcel=len(others),
        parcel_paid_before=any(o.paid for o in others),
        photo_matches=tuple(matches),
        photos=tuple(
            PhotoFacts(
                position=p.position,
                taken_at=p.taken_at,
                zone_known=bool(p.taken_zone_known),
                screenshot=bool(p.screenshot),
            )
            for p in claim.photos
        ),
        recent_claims=len([c for c in history if c.created_at <= (claim.created_at or now)]) or 1,
    )
    reasons = integrity_reasons(facts, policy)
    evidence: dict[str, Any] = {
        "reasons": [str(r) for r in reasons],
        "shipment": None
        if shipment is None
        else {
            "declared_value": amount_text(shipment.declared_value, shipment.currency),
            "currency": shipment.currency,
            "status": shipment.status,
            "delivered_at": None if shipment.delivered_at is None else shipment.delivered_at.isoformat(),
        },
        "claimed_value": amount_text(claim.claimed_value, claim.currency),
        "parcel_claims": [{"claim_id": o.id, "state": o.state, "paid": o.paid} for o in others],
        "photo_matches": [
            {
                "position": m.position,
                "claim_id": m.other_claim_id,
                "photo_id": m.other_photo_id,
                "distance": m.distance,
            }
            for m in matches
        ],
        "recent_claims": facts.recent_claims,
    }
    return Findings(reasons, facts, evidence)


def basis_for(session: Session, claim: Claim) -> tuple[Decimal, str]:
    """(value, currency) the claim's payout is computed on now (see `claims.integrity.payout_basis`):
    the shipment's insured value once it is known, the value on the claim until then."""
    shipment = shipment_facts(shipment_rows.get(session, claim.tracking_number))
    if shipment is None:
        return claim.declared_value, claim.currency
    return payout_basis(claim.claimed_value, claim.currency, shipment)
