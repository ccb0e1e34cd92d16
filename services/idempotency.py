"""The `Idempotency-Key` protocol, one component for every POST that takes the header.

A mobile client on a bad network retries; a retry must never file a second claim or store a second
set of photos. The rules, applied by `Idempotency.begin`:

- a finished request with the same fingerprint (user, normalised fields, each photo's SHA-256) is
  answered again verbatim (`Replay`);
- a different request under the same key is refused (422 ``idempotency_key_reused``);
- one still running is refused (409 ``request_in_progress``, Retry-After) unless its request died:
  the row names its process (host, pid and the pid's start time), so a retry on the same host takes
  the key over at once when that process is gone (killed mid-upload); from another host, once the
  row is older than `ABANDONED_AFTER`. Taking over is safe even from a slow but living request: its
  commit is guarded by the row's start time, so it gets `LostKey` and writes nothing;
- otherwise an ``in_flight`` row is committed and the caller holds a `Ticket`.

The caller then does its work and, in the SAME transaction as its own rows, calls `complete` (which
raises `LostKey` when a retry took the key over meanwhile: the caller must not commit). On any
failure it calls `release`, so the client may retry at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from claims.errors import BadRequest, Conflict, Unprocessable
from storage import idempotency as keys
from storage.tables import IdempotencyKey, utcnow

logger = logging.getLogger(__name__)

# An in-flight row older than this belongs to a request that died: it may be taken over. An upload's
# work after its key is taken (decode, store, commit) takes seconds; the body arrived before.
ABANDONED_AFTER = timedelta(seconds=30)
RETRY_AFTER_S = 2
_ATTEMPTS = 3
_KEY_RE = re.compile(r"[\x20-\x7e]{1,255}", re.ASCII)


@dataclass(frozen=True)
class Ticket:
    """Our hold on an idempotency key: its row and the created_at we set (our ownership token)."""

    row_id: int
    started: datetime


@dataclass(frozen=True)
class Replay:
    """The stored answer of the first request with this key, to send again."""

    status_code: int
    body: dict[str, Any]


class LostKey(Exception):
    """Our in-flight row was taken over by a retry (we were presumed dead): do not commit."""


def check_key(value: str | None) -> str:
    """The header's value, or BadRequest when it is missing or not printable ASCII."""
    if value is None or not value.strip():
        raise BadRequest(
            "the Idempotency-Key header is required (any unique value per request, reused on retries)",
            code="idempotency_key_missing",
        )
    if not _KEY_RE.fullmatch(value):
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters", code="idempotency_key_invalid"
        )
    return value


def fingerprint(payload: dict[str, Any]) -> str:
    """A stable digest of what makes two requests the same request."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def _start_ticks(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None if it is not running
    or this system has no /proc. With the pid, it names one process: a reused pid starts later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the command name


def process_owner() -> str:
    """This process, as an in-flight row records it: "host:pid:start"."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def owner_is_dead(owner: str | None) -> bool:
    """True only when `owner` is known to be gone: same host, and no process with that pid and start
    time. Another host's process, or no /proc, is unknown (False): the row then ages out."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or started in ("", "?"):
        return False
    if not Path("/proc/self/stat").exists():
        return False
    return _start_ticks(int(pid)) != started


def _in_progress() -> Conflict:
    return Conflict(
        "a request with this Idempotency-Key is still being processed; retry later",
        code="request_in_progress",
        retry_after=RETRY_AFTER_S,
    )


def _replay(row: IdempotencyKey) -> Replay:
    return Replay(status_code=row.status_code or 200, body=dict(row.response_body or {}))


class Idempotency:
    """Idempotency keys of one database, remembered for `ttl` once done."""

    def __init__(self, sessions: Callable[[], Session], ttl: timedelta) -> None:
        self.sessions = sessions
        self.ttl = ttl

    def begin(self, session: Session, user_id: int, key: str, request_hash: str) -> Ticket | Replay:
        """Apply the rules above: a ticket to go ahead, or the stored answer to replay."""
        for _ in range(_ATTEMPTS):
            now = utcnow()
            row = keys.find(session, user_id, key)
            if row is not None and row.state == "done" and row.created_at < now - self.ttl:
                session.delete(row)  # remembered long enough: the key is free again
                session.commit()
                row = None
            if row is None:
                row = keys.add_in_flight(session, user_id, key, request_hash, now, process_owner())
                try:
                    session.commit()
                except IntegrityError:  # a concurrent request with the same key won the insert
                    session.rollback()
                    continue
                return Ticket(row.id, now)
            if row.request_hash != request_hash:
                raise Unprocessable(
                    "Idempotency-Key already used for a different request", code="idempotency_key_reused"
                )
            if row.state == "done":
                return _replay(row)
            if row.created_at > now - ABANDONED_AFTER and not owner_is_dead(row.owner):
                raise _in_progress()
            # Abandoned (its request died): take it over, unless another retry just did.
            taken = keys.take_over(session, row.id, row.created_at, now, process_owner())
            session.commit()
            if taken:
                logger.info("taking over abandoned idempotency key %s of user %s", row.id, user_id)
                return Ticket(row.id, now)
        raise _in_progress()

    def complete(
        self,
        session: Session,
        ticket: Ticket,
        *,
        status_code: int,
        body: dict[str, Any],
        claim_id: str | None,
        now: datetime,
    ) -> None:
        """Store the answer in the caller's transaction; LostKey when the key is no longer ours."""
        if not keys.mark_done(
            session,
            ticket.row_id,
            ticket.started,
            status_code=status_code,
            body=body,
            claim_id=claim_id,
            now=now,
        ):
            raise LostKey()

    def after_lost(self, session: Session, ticket: Ticket, request_hash: str) -> Replay:
        """What to answer when our key was taken over: the retry's answer if it finished, else 409."""
        logger.warning("idempotency key %s was taken over while this request ran", ticket.row_id)
        row = session.get(IdempotencyKey, ticket.row_id)
        if row is not None and row.state == "done" and row.request_hash == request_hash:
            return _replay(row)
        raise _in_progress()

    def release(self, ticket: Ticket) -> None:
        """Delete our in-flight row (best effort: if the database is down it stays, and a retry
        takes it over once it is `ABANDONED_AFTER` old)."""
        try:
            with self.sessions() as session:
                keys.delete_in_flight(session, ticket.row_id, ticket.started)
                session.commit()
        except Exception:
            logger.warning("could not release idempotency key row %s", ticket.row_id, exc_info=True)
