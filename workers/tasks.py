"""Celery tasks. They take ids only: the database is the source of truth, not the message.

- ``claimlane.assess_claim``: `workers.assessment.assess_claim`, retried with exponential backoff
  while the object store or the database is unavailable.
- ``claimlane.requeue_stale_claims``: the sweeper (run by ``celery beat`` every 20 seconds: a claim
  whose worker died is assessed again within a minute).

Why a sweeper: the API commits a claim first and enqueues its assessment second, so a worker never
receives the id of a claim it cannot see. Between the two there is a gap: if the broker is down, or
the API process dies, right after the commit, the claim is saved but no message exists and nothing
would ever assess it. Enqueueing inside the transaction would be worse (a message for a claim that
then rolls back, or a worker racing the commit). The sweeper closes the gap: any claim still in
``submitted`` or ``assessing`` some minutes after its last state change is enqueued again. A
duplicate message is harmless, because the assessment is idempotent. It also rescues claims whose
task exhausted its retries during a long outage, or whose worker died with the message lost.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import timedelta

import httpx

from claims.lifecycle import ClaimState
from config.logs import TASK_REQUEST_ID_HEADER, request_id_var
from services import webhooks
from services.context import Services
from storage.claims import stale_claim_ids
from storage.db import is_unavailable
from storage.objects import ObjectStoreUnavailable
from storage.tables import utcnow
from workers.assessment import assess_claim
from workers.celery_app import app, get_services

logger = logging.getLogger(__name__)

MAX_RETRIES = 10
RETRY_BACKOFF_BASE_S = 2.0
RETRY_BACKOFF_MAX_S = 300.0  # well below the broker's visibility timeout (see celery_app)
STALE_STATES = (ClaimState.SUBMITTED, ClaimState.ASSESSING)
SWEEP_BATCH = 500


def is_transient(exc: BaseException) -> bool:
    """An infrastructure error worth retrying: the object store or the database is unavailable."""
    return isinstance(exc, ObjectStoreUnavailable) or is_unavailable(exc)


def retry_countdown(retries: int) -> float:
    """Seconds before retry number `retries` + 1: 2, 4, 8, ... capped at 5 minutes, with full
    jitter on the upper half so a recovering service is not hit by every worker at once."""
    ceiling = min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_BASE_S * (2**retries))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _request_id(request: object) -> str | None:
    """The request id the API sent in the message headers (Celery shows custom headers as
    attributes of the task's request, or under `headers` in older protocols)."""
    found = getattr(request, TASK_REQUEST_ID_HEADER, None)
    if found is None:
        found = (getattr(request, "headers", None) or {}).get(TASK_REQUEST_ID_HEADER)
    return str(found) if found else None


@app.task(name="claimlane.assess_claim", bind=True, max_retries=MAX_RETRIES, acks_late=True)
def assess_claim_task(self, claim_id: str) -> str:
    token = request_id_var.set(_request_id(self.request))  # this task's log lines carry the upload's id
    try:
        outcome = assess_claim(get_services(), claim_id)
        logger.info("assessment of claim %s: %s", claim_id, outcome)
        return outcome
    except Exception as exc:
        if not is_transient(exc):
            raise
        countdown = retry_countdown(self.request.retries)
        logger.warning(
            "claim %s: transient error (%s: %s), retry %d/%d in %.0f s",
            claim_id,
            type(exc).__name__,
            exc,
            self.request.retries + 1,
            MAX_RETRIES,
            countdown,
        )
        # After MAX_RETRIES this re-raises `exc`: the task fails and the sweeper picks it up later.
        raise self.retry(exc=exc, countdown=countdown) from exc
    finally:
        request_id_var.reset(token)


def requeue_stale_claims(
    services: Services,
    older_than: timedelta,
    *,
    enqueue: Callable[[str], None] | None = None,
    limit: int = SWEEP_BATCH,
) -> list[str]:
    """Enqueue the assessment of every claim in submitted/assessing whose state has not changed for
    `older_than`; returns their ids (oldest first, at most `limit`). `enqueue` defaults to the
    Celery task; the in-process runner passes its dispatcher's `enqueue_assessment`."""
    if enqueue is None:

        def enqueue(claim_id: str) -> None:
            assess_claim_task.apply_async(args=[claim_id])

    cutoff = utcnow() - older_than
    with services.sessions() as session:
        ids = stale_claim_ids(session, [s.value for s in STALE_STATES], cutoff, limit)
    for claim_id in ids:
        enqueue(claim_id)
    if ids:
        logger.warning("re-enqueued %d claim(s) stuck in submitted/assessing: %s", len(ids), ids)
    return ids


@app.task(name="claimlane.requeue_stale_claims", ignore_result=True)
def requeue_stale_claims_task(older_than_seconds: float = 30, older_than_minutes: float | None = None) -> int:
    """Beat-friendly wrapper: ``celery -A workers.celery_app beat`` runs it every 20 seconds
    (`older_than_minutes`: what beat schedules of earlier releases still send)."""
    seconds = older_than_minutes * 60 if older_than_minutes is not None else older_than_seconds
    return len(requeue_stale_claims(get_services(), timedelta(seconds=seconds)))


@app.task(name="claimlane.deliver_webhooks", ignore_result=True)
def deliver_webhooks_task() -> int:
    """One round of webhook deliveries (services.webhooks): every due message attempted once."""
    services = get_services()
    with httpx.Client(timeout=webhooks.TIMEOUT_S, follow_redirects=False) as client:
        return webhooks.deliver_due(
            services.sessions, webhooks.http_send(client), retry_scale=services.settings.webhook_retry_scale
        )
