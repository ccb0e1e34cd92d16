"""Idempotency keys: the queries behind `services.idempotency` (one row per user and key).

A row is ``in_flight`` while its request runs and ``done`` with the stored answer afterwards. The row's
`created_at` doubles as an ownership token: every write that acts for one request names the
`created_at` it set, so a request presumed dead (its row taken over by a retry) cannot finish.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from storage.tables import IdempotencyKey


def find(session: Session, user_id: int, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )


def add_in_flight(
    session: Session, user_id: int, key: str, fingerprint: str, now: datetime, owner: str | None = None
) -> IdempotencyKey:
    """A new in-flight row (the unique (user, key) constraint makes a concurrent twin fail on commit)."""
    row = IdempotencyKey(
        user_id=user_id, key=key, request_hash=fingerprint, state="in_flight", created_at=now, owner=owner
    )
    session.add(row)
    return row


def take_over(
    session: Session, row_id: int, seen_started: datetime, now: datetime, owner: str | None = None
) -> bool:
    """Claim an abandoned in-flight row, unless another retry claimed it first."""
    result = session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.id == row_id,
            IdempotencyKey.state == "in_flight",
            IdempotencyKey.created_at == seen_started,
        )
        .values(created_at=now, owner=owner)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def mark_done(
    session: Session,
    row_id: int,
    started: datetime,
    *,
    status_code: int,
    body: dict[str, Any],
    claim_id: str | None,
    now: datetime,
) -> bool:
    """Store the answer on our in-flight row; False when the row is no longer ours."""
    result = session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.id == row_id,
            IdempotencyKey.state == "in_flight",
            IdempotencyKey.created_at == started,
        )
        .values(
            state="done", status_code=status_code, response_body=body, claim_id=claim_id, completed_at=now
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def delete_in_flight(session: Session, row_id: int, started: datetime) -> None:
    """Forget our in-flight row (the request failed and may be retried)."""
    session.execute(
        delete(IdempotencyKey)
        .where(
            IdempotencyKey.id == row_id,
            IdempotencyKey.state == "in_flight",
            IdempotencyKey.created_at == started,
        )
        .execution_options(synchronize_session=False)
    )
