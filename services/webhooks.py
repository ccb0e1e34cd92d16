"""Webhooks: an integration registers a URL and hears of every claim's status change, signed, at
least once.

- The outbox: `storage.transitions.apply_transition` writes one message per active endpoint in the
  transaction of the change (`storage.webhooks.enqueue_status_change`): a change that rolls back is
  never announced, one that commits always is, whatever dies afterwards.
- Delivery (`deliver_due`): the API's deliverer thread (embedded mode) or the Celery beat task
  ``claimlane.deliver_webhooks`` takes due messages one by one with a conditional update (two
  deliverers never send one attempt twice), POSTs the JSON event, and records the attempt in the
  delivery log. A 2xx answer delivers it; anything else (an error status, a timeout, a refused
  connection) schedules the next attempt by `RETRY_SCHEDULE_S` (about 5 s, 5 min, 30 min, 2 h, 5 h,
  10 h, 10 h, with jitter); after the last it is `failed`. Admins can send any message again. An
  endpoint's owner disabling it cancels its pending messages.
- Signing follows the Standard Webhooks convention: headers `webhook-id` (the message id: the same
  on every attempt, so a receiver drops duplicates), `webhook-timestamp` (Unix seconds of this
  attempt; refuse old ones) and `webhook-signature`: ``v1,<base64 HMAC-SHA256 of
  "{id}.{timestamp}.{body}">``, keyed with the endpoint's secret ``whsec_<base64 key>``.
- Events are ``claim.status_changed`` with the claim id, tracking number, old and new status, when
  it changed and `sequence` (the audit entry's id: later changes have larger ones, so a receiver
  can order what arrives out of order). No personal data and no money: the receiver reads the claim
  through the API for more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.orm import Session, sessionmaker

from claims.errors import Conflict, NotFound, Unprocessable
from claims.text import has_control_characters
from storage import webhooks as rows
from storage.db import is_unavailable
from storage.tables import User, WebhookAttempt, WebhookEndpoint, WebhookMessage, utcnow

logger = logging.getLogger(__name__)

RETRY_SCHEDULE_S = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_S) + 1
TIMEOUT_S = 10.0
# A taken message is not taken again for this long (a deliverer that died mid-send is retried then).
LEASE = timedelta(seconds=60)
BATCH = 50
MAX_URL = 2000
USER_AGENT = "ClaimLane-Webhooks/1"
MAX_BACKOFF_S = 30.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one attempt (Standard Webhooks, v1)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def check_url(url: str, *, production: bool) -> str:
    """The URL, or Unprocessable: absolute http(s) with a host, no credentials in it, https outside
    development."""
    url = url.strip()
    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a bad port
    except ValueError as exc:
        parts, port, problem = None, None, f"not a valid URL: {exc}"
    if problem is None and parts is not None:
        if len(url) > MAX_URL:
            problem = f"at most {MAX_URL} characters"
        elif has_control_characters(url) or " " in url:
            problem = "contains spaces or control characters"
        elif parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "must be an absolute http or https URL"
        elif parts.username or parts.password:
            problem = "must not contain credentials (the signature authenticates us)"
        elif production and parts.scheme != "https":
            problem = "must use https"
        elif production and _internal_address(parts.hostname):
            problem = "must not point at a private, loopback or link-local address"
        elif port == 0:
            problem = "port 0 is not a port"
    if problem:
        raise Unprocessable(
            f"url: {problem}", code="validation_error", details=[{"field": "url", "message": problem}]
        )
    return url


def _internal_address(host: str) -> bool:
    """An IP literal of this network's own ranges (names are not resolved here)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower() in ("localhost", "localhost.localdomain")
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved


def register(
    session: Session, user: User, url: str, description: str | None, *, production: bool
) -> WebhookEndpoint:
    if description is not None and has_control_characters(description):
        raise Unprocessable(
            "description: contains control characters",
            code="validation_error",
            details=[{"field": "description", "message": "contains control characters"}],
        )
    endpoint = rows.add_endpoint(
        session,
        owner_id=user.id,
        url=check_url(url, production=production),
        description=description,
        secret=new_secret(),
        now=utcnow(),
    )
    session.commit()
    return endpoint


def list_endpoints(session: Session, user: User) -> list[WebhookEndpoint]:
    return list(rows.endpoints(session, None if user.role == "admin" else user.id))


def disable(session: Session, user: User, endpoint_id: str) -> None:
    """Stop deliveries to an endpoint (its owner, or an admin); its pending messages are cancelled
    (not failed: nothing is owed to an endpoint its owner turned off). Again: no-op."""
    endpoint = rows.get_endpoint(session, endpoint_id)
    if endpoint is None or (user.role != "admin" and endpoint.owner_id != user.id):
        raise NotFound("no such webhook endpoint")
    if endpoint.disabled_at is None:
        endpoint.disabled_at = utcnow()
        rows.cancel_pending(session, endpoint.id)
        session.commit()


# --------------------------------------------------------------------------------------------------
# Delivery


def payload(message: WebhookMessage, tracking_number: str | None) -> dict[str, Any]:
    event = message.event
    return {
        "type": message.event_type,
        "timestamp": event.at.isoformat(),
        "data": {
            "claim_id": event.claim_id,
            "tracking_number": tracking_number,
            "status": event.to_state,
            "previous_status": event.from_state,
            "changed_at": event.at.isoformat(),
            "sequence": event.id,
            "url": f"/v1/claims/{event.claim_id}",
        },
    }


def body_of(message: WebhookMessage, tracking_number: str | None) -> bytes:
    return json.dumps(payload(message, tracking_number), separators=(",", ":"), sort_keys=True).encode()


def next_delay(attempts: int, rng: random.Random | None = None, scale: float = 1.0) -> timedelta | None:
    """The wait before attempt `attempts` + 1, or None when `attempts` was the last."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_SCHEDULE_S[attempts - 1] * scale
    jitter = (rng or random).uniform(0.9, 1.1)
    return timedelta(seconds=base * jitter)


@dataclass
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


Send = Callable[[str, bytes, dict[str, str]], Outcome]


def http_send(client: httpx.Client) -> Send:
    def send(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started = time.perf_counter()
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return Outcome(response.status_code, error, _ms(started))

    return send


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def deliver_due(
    sessions: sessionmaker[Session],
    send: Send,
    *,
    now: datetime | None = None,
    retry_scale: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """One round: every due message (up to BATCH) attempted once, unless `stop()` says to end
    early (a shutting-down process). Returns how many were attempted."""
    now = now or utcnow()
    with sessions() as session:
        due = rows.due(session, now, BATCH)
    attempted = 0
    for message_id, seen_at in due:
        if stop():
            break
        with sessions() as session:
            if not rows.lease(session, message_id, seen_at, now + LEASE):
                session.rollback()
                continue  # another deliverer took it
            session.commit()
        _attempt(sessions, message_id, send, retry_scale)
        attempted += 1
    return attempted


def _attempt(sessions: sessionmaker[Session], message_id: str, send: Send, retry_scale: float) -> None:
    with sessions() as session:
        message = rows.load_message(session, message_id)
        if message is None or message.state != "pending":
            return
        endpoint = rows.get_endpoint(session, message.endpoint_id)
        claim = message.event.claim
        body = body_of(message, None if claim is None else claim.tracking_number)
        url = None if endpoint is None or endpoint.disabled_at is not None else endpoint.url
        secret = None if endpoint is None else endpoint.secret
    if url is None or secret is None:
        outcome = Outcome(None, "the endpoint was disabled", 0)
    else:
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        }
        outcome = send(url, body, headers)
    with sessions() as session:
        message = rows.load_message(session, message_id)
        if message is None:
            return
        now = utcnow()
        if url is None:  # disabled meanwhile: nothing was sent, nothing is owed
            message.state, message.last_error = "cancelled", outcome.error
            session.commit()
            return
        rows.add_attempt(session, message_id, now, outcome.status_code, outcome.error, outcome.duration_ms)
        message.attempts += 1
        if outcome.ok:
            message.state, message.delivered_at, message.last_error = "delivered", now, None
        else:
            message.last_error = outcome.error
            delay = next_delay(message.attempts, scale=retry_scale)
            if delay is None:
                message.state = "failed"
            else:
                message.next_attempt_at = now + delay
        session.commit()
    if not outcome.ok:
        logger.warning("webhook %s to %s: attempt failed (%s)", message_id, url, outcome.error)


@dataclass(frozen=True)
class LogEntry:
    message: WebhookMessage
    attempts: list[WebhookAttempt]


def redeliver(session: Session, message_id: str) -> LogEntry:
    """Send a message again now (admins): back to pending, its attempt count reset; the log keeps
    every earlier attempt."""
    message = rows.load_message(session, message_id)
    if message is None:
        raise NotFound("no such webhook message")
    endpoint = rows.get_endpoint(session, message.endpoint_id)
    if endpoint is None or endpoint.disabled_at is not None:
        raise Conflict("the message's endpoint is disabled", code="endpoint_disabled")
    message.state, message.attempts, message.next_attempt_at = "pending", 0, utcnow()
    session.commit()
    return LogEntry(message, rows.attempts(session, [message.id])[message.id])


def delivery_log(
    session: Session,
    *,
    state: str | None,
    endpoint_id: str | None,
    claim_id: str | None,
    limit: int,
) -> list[LogEntry]:
    found = rows.messages(session, state=state, endpoint_id=endpoint_id, claim_id=claim_id, limit=limit)
    tries = rows.attempts(session, [m.id for m in found])
    return [LogEntry(m, tries[m.id]) for m in found]


class Deliverer:
    """The embedded mode's delivery loop: a daemon thread that runs `deliver_due` every `poll_s`.
    Several API processes may each run one (the conditional take keeps attempts single)."""

    def __init__(
        self, sessions: sessionmaker[Session], poll_s: float = 1.0, retry_scale: float = 1.0
    ) -> None:
        self.sessions = sessions
        self.poll_s = poll_s
        self.retry_scale = retry_scale
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)

    def start(self) -> Deliverer:
        self._thread = threading.Thread(target=self._loop, name="claimlane-webhooks", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        send = http_send(self._client)
        failures = 0
        while not self._stop.is_set():
            try:
                deliver_due(self.sessions, send, retry_scale=self.retry_scale, stop=self._stop.is_set)
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:  # an outage is said once, then now and then
                    if is_unavailable(exc):
                        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                        logger.warning("webhook deliveries wait: the database is unavailable (%s)", first)
                    else:
                        logger.exception("webhook delivery round failed; trying again")
            # Back off while failing (up to MAX_BACKOFF_S), so an outage is not hammered every poll.
            delay = self.poll_s if failures == 0 else min(MAX_BACKOFF_S, self.poll_s * 2 ** min(failures, 8))
            self._stop.wait(delay)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_S + 5)
        self._client.close()
