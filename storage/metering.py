"""Business metrics counted when, and only when, the change they describe commits.

A claim's state change, a payout instruction or a rating is recorded in the caller's transaction;
its counter moves in `after_commit`, so a rolled-back attempt (a lost race, an optimistic-lock retry,
an error) never counts and a retried one counts once. `install` hooks a sessionmaker
(`storage.db.make_sessionmaker` does it for every session of the service).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from claims.lifecycle import Actor, ClaimState
from config import metrics

_KEY = "claimlane.on_commit"

Effect = Callable[[], None]


def on_commit(session: Session, effect: Effect) -> None:
    """Run `effect` after `session`'s current transaction commits; drop it if it rolls back."""
    session.info.setdefault(_KEY, []).append(effect)


def _run(session: Session) -> None:
    for effect in session.info.pop(_KEY, []):
        effect()


def _drop(session: Session, *_: Any) -> None:
    session.info.pop(_KEY, None)


def install(maker: sessionmaker[Session]) -> None:
    event.listen(maker, "after_commit", _run)
    event.listen(maker, "after_rollback", _drop)
    event.listen(maker, "after_soft_rollback", _drop)


def _deadline(clock: str, due: datetime | None, now: datetime) -> Effect:
    outcome = "met" if due is None or now <= due else "missed"
    return lambda: metrics.SLA.labels(clock, outcome).inc()


def _graded(model_version: str, detail: Mapping[str, Any]) -> list[Effect]:
    probs = detail.get("claim_probs")
    effects: list[Effect] = []
    if isinstance(probs, list) and probs:
        p_damaged = max(0.0, 1.0 - float(probs[0]))
        confidence = detail.get("confidence")
        conf = float(confidence) if confidence is not None else max(float(p) for p in probs)
        effects.append(lambda: metrics.P_DAMAGED.labels(model_version).observe(p_damaged))
        effects.append(lambda: metrics.CONFIDENCE.labels(model_version).observe(conf))
    return effects


def transition_effects(
    *,
    current: ClaimState | None,
    target: ClaimState,
    actor: Actor,
    reasons: Iterable[str],
    detail: Mapping[str, Any],
    model_version: str | None,
    currency: str,
    decision_due_at: datetime | None,
    now: datetime,
) -> list[Effect]:
    """What one state change adds to the business counters (see `config.metrics`)."""
    effects: list[Effect] = []
    if current is None and target is ClaimState.SUBMITTED:
        effects.append(metrics.CLAIMS_FILED.inc)
    assessed = current is ClaimState.ASSESSING and actor is Actor.SYSTEM
    if assessed and target in (ClaimState.OFFERED, ClaimState.IN_REVIEW):
        version = model_version or "none"
        outcome = "offer" if target is ClaimState.OFFERED else "review"
        effects.append(lambda: metrics.ASSESSMENTS.labels(version, outcome).inc())
        effects.extend(_graded(version, detail))
    if target is ClaimState.OFFERED:
        effects.append(lambda: metrics.OFFERS_MADE.labels(currency).inc())
        # The fast lane decides at once: its decision deadline is met unless the assessment itself
        # came after it (a claim stuck for days).
        effects.append(_deadline("decision", decision_due_at, now))
    if target is ClaimState.IN_REVIEW:
        for reason in list(reasons) or ["unspecified"]:
            effects.append(_review(str(reason)))
    if target is ClaimState.ACCEPTED:
        option = str(detail.get("option") or "unknown")
        effects.append(lambda: metrics.OFFERS_ACCEPTED.labels(option).inc())
    if current is ClaimState.IN_REVIEW and target in (ClaimState.APPROVED, ClaimState.DENIED):
        effects.append(_deadline("decision", decision_due_at, now))
    return effects


def _review(reason: str) -> Effect:
    return lambda: metrics.REVIEWS.labels(reason).inc()


def first_response_effect(due: datetime | None, now: datetime) -> Effect:
    """A person took a case for the first time since it entered review."""
    return _deadline("first_response", due, now)


def payout_effect(currency: str, option: str, amount: Decimal | None) -> Effect:
    def effect() -> None:
        metrics.PAYOUTS.labels(currency, option).inc()
        if amount is not None:
            metrics.PAYOUT_AMOUNT.labels(currency).inc(float(amount))

    return effect


def feedback_effect(rating: int) -> Effect:
    return lambda: metrics.FEEDBACK.labels(str(rating)).inc()
