"""Shaping answers: domain objects (claims, their photos and audit trail) as the API's views.

Shared by the customer's routes (`api.routers.claims`) and the adjusters' (`api.routers.review`).
The view shows an adjuster's decision (approved, denied, needs_photos) but never who made it, and a
customer sees "you", "adjuster" or "ClaimLane" as the actor of each step.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal, cast

from fastapi import Request

from api.schemas import (
    ApprovedView,
    ClaimList,
    ClaimSummary,
    ClaimView,
    DeniedView,
    NeedsPhotosView,
    OfferView,
    OptionView,
    PhotoView,
    RetakeView,
    ReviewView,
    TimelineEntry,
)
from claims.lifecycle import DESCRIPTIONS, ClaimState
from claims.money import amount_text
from storage.tables import Claim, User

OptionName = Literal["cash", "reshipment", "store_credit"]

# --------------------------------------------------------------------------------------------------
# Views


def _actor_for(label: str, viewer: User) -> str:
    if viewer.role != "customer":
        return label
    if label.startswith("customer"):
        return "you"
    if label.startswith("adjuster") or label.startswith("admin"):
        return "adjuster"
    return "ClaimLane"


def _decision_view(
    claim: Claim, add_photos_url: str = ""
) -> OfferView | ReviewView | ApprovedView | DeniedView | NeedsPhotosView | None:
    decision = claim.decision
    if not decision:
        return None
    kind = decision.get("kind")
    explanation = str(decision.get("explanation", ""))
    if kind == "approved":  # an adjuster's decisions (services.reviewing): never who made them
        return ApprovedView(
            amount=amount_text(Decimal(str(decision["amount"])), claim.currency) or "0",
            currency=str(decision.get("currency") or claim.currency),
            reason=decision.get("reason"),
            explanation=explanation,
        )
    if kind == "denied":
        return DeniedView(reason=str(decision.get("reason") or ""), explanation=explanation)
    if kind == "needs_photos":
        return NeedsPhotosView(
            reason=str(decision.get("reason") or ""), explanation=explanation, add_photos_url=add_photos_url
        )
    if kind == "offer":
        return OfferView(
            amount=str(decision["amount"]),
            currency=str(decision.get("currency") or claim.currency),
            options=[
                OptionView(kind=o["kind"], amount=o.get("amount"), description=o.get("description", ""))
                for o in decision.get("options", [])
            ],
            expires_at=claim.offer_expires_at,
            explanation=str(decision.get("explanation", "")),
        )
    return ReviewView(
        reasons=[str(r) for r in decision.get("reasons", [])],
        explanation=str(decision.get("explanation", "")),
        retake=[RetakeView(**r) for r in decision.get("retake", [])],
    )


def _expected_decision_at(claim: Claim, state: ClaimState) -> datetime | None:
    """When the customer can expect a decision: the deadline while one is pending (in review: the
    decision deadline of `claims.deadlines`), nothing while we wait for their photos, and when it
    was made once an adjuster has decided."""
    if state is ClaimState.NEEDS_PHOTOS:
        return None
    if claim.decided_at is not None and state in (
        ClaimState.APPROVED,
        ClaimState.DENIED,
        ClaimState.PAYOUT_INSTRUCTED,
    ):
        return claim.decided_at
    return claim.decision_due_at


def claim_view(request: Request, claim: Claim, viewer: User) -> ClaimView:
    state = ClaimState(claim.state)
    add_photos_url = str(request.app.url_path_for("add_claim_photos", claim_id=claim.id))
    return ClaimView(
        id=claim.id,
        status=state,
        status_description=DESCRIPTIONS[state],
        tracking_number=claim.tracking_number,
        declared_value=amount_text(claim.declared_value, claim.currency),
        currency=claim.currency,
        claimed_value=amount_text(claim.claimed_value, claim.currency),
        description=claim.description,
        created_at=claim.created_at,
        photos=[
            PhotoView(
                id=p.id,
                position=p.position,
                url=str(request.app.url_path_for("get_claim_photo", claim_id=claim.id, photo_id=p.id)),
                grade=p.grade,
                grade_probs=p.grade_probs,
            )
            for p in sorted(claim.photos, key=lambda p: p.position)
        ],
        claim_grade=claim.claim_grade,
        claim_probs=claim.claim_probs,
        confidence=None if claim.confidence is None else str(claim.confidence),
        decision=_decision_view(claim, add_photos_url),
        expected_decision_at=_expected_decision_at(claim, state),
        accepted_option=cast(OptionName | None, claim.accepted_option),
        payout_amount=amount_text(claim.payout_amount, claim.currency),
        timeline=[
            TimelineEntry(
                at=e.at,
                from_state=ClaimState(e.from_state) if e.from_state else None,
                to_state=ClaimState(e.to_state),
                actor=_actor_for(e.actor, viewer),
                reasons=list(e.reason_codes or []),
            )
            for e in sorted(claim.events, key=lambda e: e.id)
            if e.action == "transition" and e.to_state
        ],
    )


def claim_list(request: Request, claims: list[Claim], next_cursor: str | None) -> ClaimList:
    items = []
    for claim in claims:
        state = ClaimState(claim.state)
        decision = claim.decision or {}
        offer = (
            decision.get("amount")
            if state is ClaimState.OFFERED and decision.get("kind") == "offer"
            else None
        )
        items.append(
            ClaimSummary(
                id=claim.id,
                url=str(request.app.url_path_for("get_claim", claim_id=claim.id)),
                status=state,
                status_description=DESCRIPTIONS[state],
                tracking_number=claim.tracking_number,
                declared_value=amount_text(claim.declared_value, claim.currency),
                currency=claim.currency,
                created_at=claim.created_at,
                updated_at=claim.updated_at,
                expected_decision_at=_expected_decision_at(claim, state),
                offer_amount=None if offer is None else str(offer),
                payout_amount=amount_text(claim.payout_amount, claim.currency),
            )
        )
    return ClaimList(items=items, next_cursor=next_cursor)
