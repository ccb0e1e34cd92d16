"""Signing in to the review console, server-side.

The browser's cookie holds a random opaque token; the database holds its SHA-256, the user, an
expiry (a working day) and a CSRF token that every form of the console must send back. Signing out
revokes the session on the server, so a copied cookie is worthless afterwards; disabling a user or
rotating their key revokes all their sessions. Before this, the cookie was the API key itself: a
cookie stolen from a browser was a key for the whole API, and logging out revoked nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from storage import console_sessions as rows
from storage.tables import User

SESSION_TTL = timedelta(hours=12)  # a working day; then the key is pasted again
_KEEP_ENDED = timedelta(days=30)


@dataclass(frozen=True)
class SignedIn:
    user: User
    csrf_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def sign_in(session: Session, user: User, now: datetime) -> str:
    """A new session for `user` (already authenticated); the opaque token for the cookie. The caller
    commits."""
    token = secrets.token_urlsafe(32)
    rows.purge_expired(session, user.id, now - _KEEP_ENDED)
    rows.add(session, _hash(token), user.id, secrets.token_urlsafe(32), now, now + SESSION_TTL)
    return token


def current(session: Session, token: str | None, now: datetime) -> SignedIn | None:
    """Who the cookie's token signs in: None when it is unknown, expired, revoked or its user is
    disabled."""
    if not token or len(token) > 200:
        return None
    found = rows.active(session, _hash(token), now)
    if found is None:
        return None
    console_session, user = found
    if user.disabled_at is not None:
        return None
    return SignedIn(user, console_session.csrf_token)


def csrf_ok(signed_in: SignedIn, sent: str | None) -> bool:
    """Whether a form carried this session's CSRF token (compared in constant time)."""
    return bool(sent) and hmac.compare_digest(signed_in.csrf_token, str(sent))


def sign_out(session: Session, token: str | None, now: datetime) -> None:
    """Revoke the session of this token (nothing if there is none). The caller commits."""
    if token and len(token) <= 200:
        rows.revoke(session, _hash(token), now)


def revoke_all(session: Session, user: User, now: datetime) -> int:
    """End every session of `user` (key rotated or user disabled). The caller commits."""
    return rows.revoke_all_of(session, user.id, now)
