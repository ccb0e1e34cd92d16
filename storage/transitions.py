"""Every change of a claim's state goes through `apply_transition`: the lifecycle guard, then the
audit entry, in the caller's transaction. API and workers share it, so no code path can move a
claim without leaving its trace in the append-only log.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from claims.lifecycle import Actor, ClaimState, transition
from storage import metering
from storage import webhooks as webhook_rows
from storage.tables import AuditEvent, Claim, utcnow


def actor_label(actor: Actor, user_id: int | None = None) -> str:
    return actor.value if user_id is None else f"{actor.value}:{user_id}"


def apply_transition(
    session: Session,
    claim: Claim,
    target: ClaimState,
    actor: Actor,
    *,
    user_id: int | None = None,
    reasons: Iterable[str] = (),
    detail: dict[str, Any] | None = None,
    model_version: str | None = None,
    policy_version: str | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Move `claim` to `target` (raises `IllegalTransition`, which the API answers with 409) and
    append the audit event. The caller commits; nothing is written if the guard refuses."""
    current = ClaimState(claim.state) if claim.state else None
    if current is None:
        if target is not ClaimState.SUBMITTED:
            raise ValueError("a new claim starts as submitted")
    else:
        transition(current, target, actor)
    now = now or utcnow()
    claim.state = target.value
    claim.state_changed_at = now
    event = AuditEvent(
        claim=claim,
        at=now,
        actor=actor_label(actor, user_id),
        action="transition",
        from_state=None if current is None else current.value,
        to_state=target.value,
        model_version=model_version,
        policy_version=policy_version,
        reason_codes=[str(r) for r in reasons],
        detail=detail or {},
    )
    session.add(event)
    webhook_rows.enqueue_status_change(session, event, now)  # the outbox, in this same transaction
    for effect in metering.transition_effects(
        current=current,
        target=target,
        actor=actor,
        reasons=event.reason_codes,
        detail=event.detail,
        model_version=model_version,
        currency=claim.currency,
        decision_due_at=claim.decision_due_at,
        now=now,
    ):
        metering.on_commit(session, effect)
    return event


def append_note(
    session: Session,
    claim: Claim,
    actor: Actor,
    user_id: int | None,
    action: str,
    detail: dict[str, Any],
    now: datetime | None = None,
) -> AuditEvent:
    """An audit entry that is not a state change (a note, an offer view, a taken case)."""
    event = AuditEvent(
        claim=claim,
        at=now or utcnow(),
        actor=actor_label(actor, user_id),
        action=action,
        from_state=claim.state,
        to_state=claim.state,
        reason_codes=[],
        detail=detail,
    )
    session.add(event)
    return event
