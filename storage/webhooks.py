"""The webhook tables' queries: endpoints, the outbox of messages, and the delivery log
(`services.webhooks` holds the rules: signing, retries, who may do what)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from storage.tables import AuditEvent, WebhookAttempt, WebhookEndpoint, WebhookMessage

EVENT_STATUS_CHANGED = "claim.status_changed"


def enqueue_status_change(session: Session, event: AuditEvent, now: datetime) -> None:
    """One pending message per active endpoint for the state change `event`, in the caller's
    transaction (it is written with the change, or not at all)."""
    with session.no_autoflush:  # never flush the caller's half-built rows from here
        endpoint_ids = list(
            session.scalars(select(WebhookEndpoint.id).where(WebhookEndpoint.disabled_at.is_(None)))
        )
    for endpoint_id in endpoint_ids:
        session.add(
            WebhookMessage(
                endpoint_id=endpoint_id,
                event=event,
                event_type=EVENT_STATUS_CHANGED,
                created_at=now,
                state="pending",
                attempts=0,
                next_attempt_at=now,
            )
        )


def add_endpoint(
    session: Session, *, owner_id: int, url: str, description: str | None, secret: str, now: datetime
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        owner_id=owner_id, url=url, description=description, secret=secret, created_at=now
    )
    session.add(endpoint)
    return endpoint


def endpoints(session: Session, owner_id: int | None) -> Sequence[WebhookEndpoint]:
    """Active endpoints, oldest first: one owner's, or everyone's (None)."""
    statement = select(WebhookEndpoint).where(WebhookEndpoint.disabled_at.is_(None))
    if owner_id is not None:
        statement = statement.where(WebhookEndpoint.owner_id == owner_id)
    return list(session.scalars(statement.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))


def get_endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint | None:
    return session.get(WebhookEndpoint, endpoint_id)


def due(session: Session, now: datetime, limit: int) -> Sequence[tuple[str, datetime]]:
    """(id, next attempt time) of pending messages due by `now`, the longest-waiting first (changes
    made together go out in the order they were made)."""
    return [
        (message_id, at)
        for message_id, at in session.execute(
            select(WebhookMessage.id, WebhookMessage.next_attempt_at)
            .where(WebhookMessage.state == "pending", WebhookMessage.next_attempt_at <= now)
            .order_by(WebhookMessage.next_attempt_at, WebhookMessage.audit_event_id, WebhookMessage.id)
            .limit(limit)
        ).all()
    ]


def lease(session: Session, message_id: str, seen_at: datetime, until: datetime) -> bool:
    """Take a due message for one delivery attempt: ONE conditional UPDATE that matches only while
    its next attempt time is still the one read, so of two deliverers exactly one sends it."""
    result = session.execute(
        update(WebhookMessage)
        .where(
            WebhookMessage.id == message_id,
            WebhookMessage.state == "pending",
            WebhookMessage.next_attempt_at == seen_at,
        )
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def cancel_pending(session: Session, endpoint_id: str) -> None:
    session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.state == "pending")
        .values(state="cancelled")
        .execution_options(synchronize_session=False)
    )


def load_message(session: Session, message_id: str) -> WebhookMessage | None:
    return session.scalars(
        select(WebhookMessage)
        .options(joinedload(WebhookMessage.event))
        .where(WebhookMessage.id == message_id)
    ).first()


def add_attempt(
    session: Session,
    message_id: str,
    at: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
) -> None:
    session.add(
        WebhookAttempt(
            message_id=message_id, at=at, status_code=status_code, error=error, duration_ms=duration_ms
        )
    )


def messages(
    session: Session,
    *,
    state: str | None,
    endpoint_id: str | None,
    claim_id: str | None,
    limit: int,
) -> Sequence[WebhookMessage]:
    """Messages, newest first (the delivery log), with their events."""
    statement = select(WebhookMessage).options(joinedload(WebhookMessage.event))
    if state is not None:
        statement = statement.where(WebhookMessage.state == state)
    if endpoint_id is not None:
        statement = statement.where(WebhookMessage.endpoint_id == endpoint_id)
    if claim_id is not None:
        statement = statement.join(AuditEvent, AuditEvent.id == WebhookMessage.audit_event_id).where(
            AuditEvent.claim_id == claim_id
        )
    return list(
        session.scalars(
            statement.order_by(WebhookMessage.created_at.desc(), WebhookMessage.id.desc()).limit(limit)
        )
    )


def attempts(session: Session, message_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
    out: dict[str, list[WebhookAttempt]] = {m: [] for m in message_ids}
    if message_ids:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.message_id.in_(list(message_ids)))
            .order_by(WebhookAttempt.id)
        ):
            out[attempt.message_id].append(attempt)
    return out
