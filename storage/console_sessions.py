"""Console sessions (`storage.tables.ConsoleSession`): the queries behind signing in and out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from storage.tables import ConsoleSession, User


def add(
    session: Session, token_hash: str, user_id: int, csrf_token: str, now: datetime, expires: datetime
) -> None:
    session.add(
        ConsoleSession(
            token_hash=token_hash, user_id=user_id, csrf_token=csrf_token, created_at=now, expires_at=expires
        )
    )


def active(session: Session, token_hash: str, now: datetime) -> tuple[ConsoleSession, User] | None:
    """The session and its user while it is neither expired nor revoked (the user may be disabled:
    the caller decides)."""
    row = session.execute(
        select(ConsoleSession, User)
        .join(User, User.id == ConsoleSession.user_id)
        .where(
            ConsoleSession.token_hash == token_hash,
            ConsoleSession.revoked_at.is_(None),
            ConsoleSession.expires_at > now,
        )
    ).first()
    return None if row is None else (row[0], row[1])


def revoke(session: Session, token_hash: str, now: datetime) -> None:
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.token_hash == token_hash, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_all_of(session: Session, user_id: int, now: datetime) -> int:
    """Revoke every live session of a user (their key was rotated or disabled); how many."""
    result = session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def purge_expired(session: Session, user_id: int, before: datetime) -> None:
    """Forget a user's sessions that ended before `before` (kept a while for the record)."""
    session.execute(
        delete(ConsoleSession).where(ConsoleSession.user_id == user_id, ConsoleSession.expires_at < before)
    )
