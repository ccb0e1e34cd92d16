"""API keys: ``cl_<8 hex prefix>_<32 url-safe secret>``, sent as ``Authorization: Bearer <key>``.

Only the prefix (to find the row without scanning) and the SHA-256 hex digest of the whole key are
stored; the key itself is shown once, when the user is created. A plain SHA-256 rather than a slow
password hash is right here: the secret part carries 192 random bits, so there is nothing to
brute-force, and a fast hash keeps authentication cheap on every request. Digests are compared
with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services import console_sessions
from storage import users as user_rows
from storage.tables import User, utcnow

ROLES = ("customer", "adjuster", "admin", "integration", "lead")
KEY_PREFIX = "cl"
_KEY_RE = re.compile(r"cl_(?P<prefix>[0-9a-f]{8})_(?P<secret>[A-Za-z0-9_-]{32})", re.ASCII)
_MAX_NAME = 120
# Compared against when no user has the prefix, so an unknown prefix costs the same as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"claimlane-no-such-key").hexdigest()


class UserExists(ValueError):
    """A user with that name already exists."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new key and its prefix: ("cl_1a2b3c4d_<32 chars>", "1a2b3c4d")."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)  # 24 bytes -> exactly 32 url-safe characters
    return f"{KEY_PREFIX}_{prefix}_{secret}", prefix


def parse_key(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    match = _KEY_RE.fullmatch(key)
    return match["prefix"] if match else None


def create_user(session: Session, name: str, role: str) -> tuple[User, str]:
    """Add a user with a fresh API key; returns (user, key). The key is not stored: show it once.

    The caller commits. Raises ValueError for a bad name or role, UserExists for a taken name.
    """
    name = (name or "").strip()
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        raise ValueError(f"user name must be 1-{_MAX_NAME} printable characters")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if user_rows.name_taken(session, name):
        raise UserExists(f"a user named {name!r} already exists")
    for _ in range(5):  # a prefix collision is harmless (lookup compares hashes), but avoid it anyway
        key, prefix = generate_key()
        if not user_rows.key_prefix_taken(session, prefix):
            break
    user = User(name=name, role=role, key_prefix=prefix, key_hash=hash_key(key))
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise UserExists(f"a user named {name!r} already exists") from exc
    return user, key


def _named(session: Session, name: str) -> User:
    user = user_rows.by_name(session, name)
    if user is None:
        raise LookupError(f"no user named {name!r}")
    return user


def set_disabled(session: Session, name: str, disabled: bool, now: datetime) -> User:
    """Disable (every request with the key fails from the next one on) or enable a user. The caller
    commits. Raises LookupError for an unknown name."""
    user = _named(session, name)
    user.disabled_at = now if disabled else None
    if disabled:
        console_sessions.revoke_all(session, user, now)
    return user


def rotate_key(session: Session, name: str) -> tuple[User, str]:
    """A new key for the user; the old one fails from the next request on (console sessions made
    with it included). The caller commits. Raises LookupError for an unknown name."""
    user = _named(session, name)
    for _ in range(5):
        key, prefix = generate_key()
        if not user_rows.key_prefix_taken(session, prefix):
            break
    user.key_prefix, user.key_hash = prefix, hash_key(key)
    console_sessions.revoke_all(session, user, utcnow())
    return user, key


def authenticate(session: Session, header_value: str | None) -> User | None:
    """The enabled user whose key is in an ``Authorization: Bearer <key>`` value, else None."""
    if not header_value:
        return None
    scheme, _, key = header_value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    key = key.strip()
    prefix = parse_key(key)
    if prefix is None:
        return None
    digest = hash_key(key)
    found: int | None = None
    # The same work whether the prefix exists or not: one query returning plain tuples, and one
    # digest comparison at least (against a dummy when no key has the prefix). The user row is read
    # only once a key matched, so the time of a wrong key does not tell whether its prefix exists.
    candidates: list[tuple[int | None, str]] = [*user_rows.key_hashes_with_prefix(session, prefix)]
    for user_id, key_hash in candidates or [(None, _DUMMY_HASH)]:
        if hmac.compare_digest(key_hash, digest) and user_id is not None:
            found = user_id
    if found is None:
        return None
    user = session.get(User, found)
    if user is None or user.disabled_at is not None:
        return None
    return user
