"""The queries behind the operations view: queue depths and ages, open deadlines, and the figures
of a period (`services.operations` turns them into the /metrics gauges and the leads' page)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from claims.lifecycle import ClaimState
from storage.review import BATCH
from storage.tables import (
    AuditEvent,
    Claim,
    ClaimFeedback,
    PayoutInstruction,
    ReviewDecision,
    User,
    WebhookMessage,
)

OPEN_STATES = (
    ClaimState.SUBMITTED,
    ClaimState.ASSESSING,
    ClaimState.OFFERED,
    ClaimState.IN_REVIEW,
    ClaimState.NEEDS_PHOTOS,
    ClaimState.ACCEPTED,
    ClaimState.APPROVED,
)


def open_states(session: Session) -> dict[str, tuple[int, datetime | None]]:
    """For each open state: how many claims are in it and since when the longest-waiting one is."""
    rows = session.execute(
        select(Claim.state, func.count(), func.min(Claim.state_changed_at))
        .where(Claim.state.in_([s.value for s in OPEN_STATES]))
        .group_by(Claim.state)
    ).all()
    return {state: (int(count), oldest) for state, count, oldest in rows}


def unpaid_payouts(session: Session) -> tuple[int, datetime | None]:
    count, oldest = session.execute(
        select(func.count(), func.min(PayoutInstruction.created_at)).where(
            PayoutInstruction.paid_at.is_(None)
        )
    ).one()
    return int(count), oldest


def pending_webhooks(session: Session) -> tuple[int, datetime | None]:
    count, oldest = session.execute(
        select(func.count(), func.min(WebhookMessage.created_at)).where(WebhookMessage.state == "pending")
    ).one()
    return int(count), oldest


def failed_webhooks(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(WebhookMessage.state == "failed")) or 0)


def review_deadlines(session: Session) -> Sequence[tuple[datetime | None, int | None, datetime | None]]:
    """(first-response due, lease holder, decision due) of every claim in review."""
    return [
        (first, holder, decision)
        for first, holder, decision in session.execute(
            select(Claim.first_response_due_at, Claim.lease_holder_id, Claim.decision_due_at).where(
                Claim.state == ClaimState.IN_REVIEW.value
            )
        ).all()
    ]


# -- the figures of a period -----------------------------------------------------------------------


def claims_filed(session: Session, since: datetime, until: datetime) -> Sequence[datetime]:
    """When each claim filed in [since, until) was filed."""
    return list(
        session.scalars(select(Claim.created_at).where(Claim.created_at >= since, Claim.created_at < until))
    )


def transitions(
    session: Session, since: datetime, until: datetime, to_states: Sequence[ClaimState]
) -> Sequence[AuditEvent]:
    """State changes into `to_states` in [since, until), oldest first."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.action == "transition",
                AuditEvent.to_state.in_([s.value for s in to_states]),
                AuditEvent.at >= since,
                AuditEvent.at < until,
            )
            .order_by(AuditEvent.id)
        )
    )


def first_takes(session: Session, claim_ids: Sequence[str]) -> dict[str, list[datetime]]:
    """When each claim's case was taken by a person (every take, oldest first)."""
    out: dict[str, list[datetime]] = {}
    for start in range(0, len(claim_ids), BATCH):
        batch = list(claim_ids[start : start + BATCH])
        for claim_id, at in session.execute(
            select(AuditEvent.claim_id, AuditEvent.at)
            .where(AuditEvent.claim_id.in_(batch), AuditEvent.action == "case_taken")
            .order_by(AuditEvent.id)
        ).all():
            out.setdefault(claim_id, []).append(at)
    return out


def claims_in_review_since(session: Session, since: datetime) -> Sequence[Claim]:
    """Claims that (last) entered review at or after `since`, and every claim in review now."""
    return list(
        session.scalars(
            select(Claim).where(
                (Claim.entered_review_at >= since) | (Claim.state == ClaimState.IN_REVIEW.value)
            )
        )
    )


def oldest_in_review(session: Session) -> tuple[str, datetime] | None:
    row = session.execute(
        select(Claim.id, Claim.entered_review_at)
        .where(Claim.state == ClaimState.IN_REVIEW.value)
        .order_by(Claim.entered_review_at, Claim.id)
        .limit(1)
    ).first()
    return None if row is None or row[1] is None else (row[0], row[1])


def payouts(session: Session, since: datetime, until: datetime) -> Sequence[tuple[str, str, Decimal | None]]:
    """(currency, option, amount) of each payout instruction made in [since, until)."""
    return [
        (currency, option, amount)
        for currency, option, amount in session.execute(
            select(PayoutInstruction.currency, PayoutInstruction.option, PayoutInstruction.amount).where(
                PayoutInstruction.created_at >= since, PayoutInstruction.created_at < until
            )
        ).all()
    ]


def review_decisions(session: Session, since: datetime, until: datetime) -> Sequence[ReviewDecision]:
    return list(
        session.scalars(select(ReviewDecision).where(ReviewDecision.at >= since, ReviewDecision.at < until))
    )


def held_cases(session: Session, now: datetime) -> dict[int, int]:
    """Cases each adjuster holds a live lease on now."""
    rows = session.execute(
        select(Claim.lease_holder_id, func.count())
        .where(
            and_(
                Claim.state == ClaimState.IN_REVIEW.value,
                Claim.lease_holder_id.is_not(None),
                Claim.lease_expires_at > now,
            )
        )
        .group_by(Claim.lease_holder_id)
    ).all()
    return {int(holder): int(count) for holder, count in rows if holder is not None}


def user_names(session: Session, ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        uid: name for uid, name in session.execute(select(User.id, User.name).where(User.id.in_(list(ids))))
    }


def feedback(session: Session, since: datetime, until: datetime) -> Sequence[tuple[int, str | None]]:
    """(rating, comment) of each rating given in [since, until), newest first."""
    return [
        (rating, comment)
        for rating, comment in session.execute(
            select(ClaimFeedback.rating, ClaimFeedback.comment)
            .where(ClaimFeedback.created_at >= since, ClaimFeedback.created_at < until)
            .order_by(ClaimFeedback.created_at.desc())
        ).all()
    ]
