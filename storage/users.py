"""Users: the queries behind API-key authentication, user creation and display names."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.tables import User


def name_taken(session: Session, name: str) -> bool:
    return session.scalar(select(User.id).where(User.name == name)) is not None


def key_prefix_taken(session: Session, prefix: str) -> bool:
    """Whether a user's key already has this prefix (harmless, but new keys avoid it)."""
    return session.scalar(select(User.id).where(User.key_prefix == prefix)) is not None


def key_hashes_with_prefix(session: Session, prefix: str) -> list[tuple[int, str]]:
    """(user id, key hash) of every key with this prefix: plain tuples, so a known prefix costs the
    same as an unknown one (no user object is built until a key matches)."""
    rows = session.execute(select(User.id, User.key_hash).where(User.key_prefix == prefix)).all()
    return [(int(uid), str(digest)) for uid, digest in rows]


def all_users(session: Session) -> list[User]:
    """Every user, oldest first."""
    return list(session.scalars(select(User).order_by(User.id)).all())


def names_by_id(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Display names of these users (None and unknown ids are left out); no query for no ids."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return {uid: name for uid, name in session.execute(select(User.id, User.name).where(User.id.in_(wanted)))}


def by_name(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).first()
