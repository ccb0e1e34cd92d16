"""Assess one claim: photos -> damage model -> payout policy -> offered | in_review.

`assess_claim` is the whole task body, shared by the in-process thread pool and the Celery worker.
It is safe to run any number of times, in any number of workers at once.

Why it is idempotent
--------------------
The work is split in three steps, and only the two short database transactions change anything:

1. Transaction A: lock the claim (``SELECT ... FOR UPDATE`` on PostgreSQL) and claim the work:
   ``submitted`` or ``needs_photos`` moves to ``assessing``; ``assessing`` is taken over as it is (an
   earlier attempt died half-way, having written nothing, see B; or the customer added the photos an
   adjuster asked for, which moves the claim to ``assessing`` itself); any other state means the
   assessment is already done (or the claim has moved on), so the call returns ``"already_done"``
   without touching it.
2. Outside any transaction (no lock is held while photos are read and the model runs): read the
   original photos, grade them in one batch, and let the policy decide. Nothing is written here.
3. Transaction B: lock the claim again and write the result, the audit event and the move to
   ``offered`` or ``in_review`` in ONE transaction, but only if the claim is still ``assessing``.
   Every photo of the claim is graded each time (added photos included). A claim sent to review gets
   its deadlines and repeat-claimant mark from `storage.review.mark_entered_review`.

So an assessment is written exactly once: the write in B is guarded by the state it changes
(``assessing`` -> decided), and that guard is checked under the row lock on PostgreSQL and by the
claim's ``row_version`` (optimistic locking) everywhere. Two workers racing through step 2 both
compute a decision, but the second to reach B either sees the claim already decided (after waiting
for the first one's lock) or fails its versioned UPDATE with `StaleDataError`; either way it rolls
back and returns ``"already_done"``. A worker that dies anywhere before B's commit leaves the claim
in ``assessing`` with nothing half-written (B is one transaction), so a re-delivered task (late
acknowledgement) or the stale-claim sweeper (`workers.tasks.requeue_stale_claims`) completes it.

Shadow mode
-----------
When the model registry has a challenger (and ``shadow_mode`` is on), step 2 also grades the same
arrays with it and asks the policy what it would decide (`workers.shadow`); transaction B adds that
as a `ShadowPrediction` row beside the claim. The challenger never changes the claim's decision,
state or audit trail, and any failure of it is logged and ignored. The champion is taken once per
assessment (`Services.model()`), so a model swapped in meanwhile never mixes into a claim: the
``model_version`` recorded is the one that graded.

Failures
--------
The machine never denies, and a claim must never crash-loop: a model that cannot be loaded or run,
or a photo that is missing or cannot be decoded, ends in a Review with reason ``model_unavailable``
(a person looks). Transient infrastructure errors (object store or database unavailable) are NOT
turned into decisions: they propagate, so the task is retried later with nothing written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from sqlalchemy.orm.exc import StaleDataError

from claims.integrity import with_integrity
from claims.lifecycle import Actor, ClaimState
from claims.policy import (
    Decision,
    Offer,
    PhotoProblem,
    PolicyConfig,
    ReasonCode,
    Review,
    UnusablePhoto,
    certified_threshold,
    combine_photos,
    decide,
    describe,
)
from config import metrics
from models.inference import DamageModel, ModelError
from models.preprocessing import ImageError, preprocess
from services.context import Services
from services.integrity import basis_for, gather
from services.photos import heatmap_key, load_model_input
from storage import claims as claim_rows
from storage.objects import ObjectNotFound, ObjectStoreUnavailable
from storage.review import mark_entered_review
from storage.tables import Claim, utcnow
from storage.transitions import apply_transition
from workers.shadow import ShadowOutcome, grade_with_challenger, record_shadow

logger = logging.getLogger(__name__)

Outcome = Literal["assessed", "already_done", "not_found"]

# Probabilities are recorded (and combined) at the model's output precision.
PROB_DECIMALS = 6
# States from which the system starts an assessment.
_STARTABLE = frozenset({ClaimState.SUBMITTED, ClaimState.NEEDS_PHOTOS})
# Attempts at transaction A when a concurrent writer changed the claim under us (optimistic locking).
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class _PhotoRef:
    id: str
    original_key: str
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class _Snapshot:
    """What step 2 needs from the claim, copied out of the session before it closes."""

    declared_value: Decimal
    currency: str
    photos: tuple[_PhotoRef, ...]


@dataclass
class _Result:
    decision: Decision
    model_version: str | None = None
    claim_probs: list[float] | None = None
    per_photo: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    maps: dict[str, list[list[float]]] = field(default_factory=dict)  # photo id -> damage map
    # What the challenger would have decided, computed after the decision is recorded.
    shadow: Callable[[], ShadowOutcome | None] | None = None
    basis: tuple[Decimal, str] | None = None  # the value and currency the decision was computed on


def assess_claim(services: Services, claim_id: str) -> Outcome:
    """Assess claim `claim_id` once: "assessed", "already_done" or "not_found" (see module doc).

    Raises on transient infrastructure errors (object store or database unavailable), so the task
    runner retries; nothing is written in that case.
    """
    started = _start(services, claim_id)
    if isinstance(started, str):
        return started
    result = _evaluate(services, started)
    with metrics.STAGE_SECONDS.labels("policy").time():
        outcome = _record(services, claim_id, result)
    if outcome == "assessed":
        services.changes.notify(claim_id)  # a customer waiting on GET ?wait= hears it now
    if outcome == "assessed" and result.shadow is not None:
        # After the decision: a challenger never delays or endangers it (a process killed here
        # loses one shadow comparison, a sample, not anything the claim needs).
        record_shadow(services, claim_id, result.shadow())
    return outcome


# --------------------------------------------------------------------------------------------------
# Transaction A: claim the work


def _start(services: Services, claim_id: str) -> _Snapshot | Outcome:
    for attempt in range(1, _CLAIM_ATTEMPTS + 1):
        with services.sessions() as session:
            claim = claim_rows.load_for_update(session, claim_id)
            if claim is None:
                return "not_found"
            state = ClaimState(claim.state)
            if state not in _STARTABLE and state is not ClaimState.ASSESSING:
                return "already_done"
            # The value insured at shipping, once the shipment is known (never more than it).
            value, currency = basis_for(session, claim)
            snapshot = _Snapshot(
                declared_value=value,
                currency=currency,
                photos=tuple(
                    _PhotoRef(p.id, p.original_key, p.sha256, p.width, p.height) for p in claim.photos
                ),
            )
            if state is ClaimState.ASSESSING:
                # An earlier attempt died mid-way (or another worker is on it right now): go on.
                logger.info("claim %s is already being assessed: continuing", claim_id)
                return snapshot
            apply_transition(session, claim, ClaimState.ASSESSING, Actor.SYSTEM)
            try:
                session.commit()
            except StaleDataError:
                # Someone changed the claim between our read and our write: look again.
                session.rollback()
                logger.info("claim %s changed concurrently (attempt %d), re-reading", claim_id, attempt)
                continue
            return snapshot
    # Still contended after several tries: another worker is clearly on it.
    return "already_done"


# --------------------------------------------------------------------------------------------------
# Step 2: grade and decide (no transaction, nothing written)


def _unavailable(services: Services, problems: list[str], model_version: str | None = None) -> _Result:
    decision = Review(None, None, (ReasonCode.MODEL_UNAVAILABLE,), services.policy.version)
    return _Result(decision=decision, model_version=model_version, problems=problems)


def _evaluate(services: Services, snap: _Snapshot) -> _Result:
    result = _grade(services, snap)
    result.basis = (snap.declared_value, snap.currency)
    return result


def _grade(services: Services, snap: _Snapshot) -> _Result:
    if not snap.photos:
        return _unavailable(services, ["the claim has no photos"])

    try:
        # One model for the whole claim, even if a new champion is swapped in meanwhile: the
        # model_version recorded is the one that graded. Loaded first: photos are decoded at its size.
        model = services.model()
    except ObjectStoreUnavailable:
        raise  # the model registry cannot be read yet: transient, the task is retried
    except ModelError as exc:
        logger.error("damage model unavailable, sending to review: %s", exc)
        return _unavailable(services, [f"model: {exc}"])

    # Read and decode: an unavailable store raises here and the task is retried.
    arrays: list[np.ndarray] = []
    problems: list[str] = []
    for photo in snap.photos:
        # The decode the upload validated, when this process made it (embedded mode); otherwise the
        # original from the store (a Celery worker, a restart, photos added later).
        cached = services.inputs.get(photo.sha256, model.input_size)
        if cached is None:  # a worker in another process: the input the upload kept
            cached = load_model_input(services.store, model.input_size, photo.sha256)
        if cached is not None:
            arrays.append(cached)
            continue
        try:
            data = services.store.get(photo.original_key)  # ObjectStoreUnavailable propagates
        except ObjectNotFound:
            problems.append(f"photo {photo.id}: original {photo.original_key!r} is missing")
            continue
        try:
            with metrics.STAGE_SECONDS.labels("decode").time():
                arrays.append(preprocess(data, model.input_size))
        except ImageError as exc:
            problems.append(f"photo {photo.id}: {exc}")
    if problems:
        logger.warning("cannot grade every photo, sending to review: %s", "; ".join(problems))
        return _unavailable(services, problems)

    batch = np.stack(arrays)
    try:
        with metrics.STAGE_SECONDS.labels("cnn").time():
            assessed = model.assess(batch)
        probs, maps = assessed.probs, assessed.maps
    except ObjectStoreUnavailable:
        raise  # the model registry cannot be read yet: transient, the task is retried
    except ModelError as exc:
        logger.error("damage model unavailable, sending to review: %s", exc)
        return _unavailable(services, [f"model: {exc}"])
    except Exception as exc:  # ONNX Runtime raises its own types; never crash-loop on them
        logger.exception("damage model failed, sending to review")
        return _unavailable(services, [f"model: {type(exc).__name__}: {exc}"])

    per_photo = {
        photo.id: [round(float(p), PROB_DECIMALS) for p in row]
        for photo, row in zip(snap.photos, probs, strict=True)
    }
    # Combine the rounded values: the recorded per-photo probabilities reproduce the decision.
    try:
        claim_probs = [round(p, PROB_DECIMALS) for p in combine_photos(list(per_photo.values()))]
        unusable = unusable_photos([p.id for p in snap.photos], assessed.problems)
        decision = decide_with_model(
            model, claim_probs, snap.declared_value, snap.currency, services.policy, unusable
        )
    except ValueError as exc:
        # Input the policy refuses (the API validates it, so this is a bug or old data): a person
        # decides, rather than a task failing on every retry.
        logger.exception("the policy refused the claim's input, sending to review")
        result = _unavailable(services, [f"policy: {exc}"], model.version)
        result.per_photo = per_photo
        return result
    return _Result(
        decision=decision,
        model_version=model.version,
        claim_probs=claim_probs,
        per_photo=per_photo,
        maps=_maps(snap.photos, maps),
        # Shadow mode, run after the decision is recorded: the challenger grades the same arrays;
        # it never changes `decision`, and never delays it.
        shadow=lambda: grade_with_challenger(
            services,
            model,
            batch,
            champion_probs=claim_probs,
            champion_decision=decision,
            declared_value=snap.declared_value,
            currency=snap.currency,
        ),
    )


def unusable_photos(photo_ids: Sequence[str], problems: Sequence[str | None]) -> tuple[UnusablePhoto, ...]:
    """The photos the model's photo gate refused, numbered as the customer sent them."""
    return tuple(
        UnusablePhoto(position, photo_id, PhotoProblem(problem))
        for position, (photo_id, problem) in enumerate(zip(photo_ids, problems, strict=True), start=1)
        if problem is not None
    )


def offer_threshold(model: DamageModel, policy: PolicyConfig) -> Decimal | None:
    """The offer threshold the policy applies to this model's grades.

    A model that publishes certified thresholds (`claimlane.fast_lane`, v2 models) gets the one for
    the policy's `max_overpay_rate`, or None (no fast lane) when it certifies none; an older model
    without them gets the policy's fixed `confidence_threshold`, as before.
    """
    thresholds = getattr(model, "fast_lane_thresholds", None)
    if thresholds is None:
        return policy.confidence_threshold
    return certified_threshold(thresholds, policy.max_overpay_rate)


def decide_with_model(
    model: DamageModel,
    claim_probs: Sequence[float],
    declared_value: Decimal,
    currency: str,
    policy: PolicyConfig,
    unusable: Sequence[UnusablePhoto] = (),
) -> Decision:
    """The policy's decision on one model's grades: its certified threshold and its photo gate."""
    return decide(
        claim_probs,
        declared_value,
        currency,
        policy,
        threshold=offer_threshold(model, policy),
        unusable=unusable,
    )


def _maps(photos: Sequence[_PhotoRef], maps: np.ndarray | None) -> dict[str, list[list[float]]]:
    """Each photo's damage map (a few dozen numbers), kept on its row: the console's heatmap is
    rendered from it on first view (`services.reviewing.heatmap_png`), off the decision's path."""
    if maps is None:
        return {}
    return {
        photo.id: np.round(np.asarray(damage_map, dtype=np.float64), 5).tolist()
        for photo, damage_map in zip(photos, maps, strict=True)
    }


# --------------------------------------------------------------------------------------------------
# Transaction B: record, once


def decision_record(decision: Decision) -> dict[str, Any]:
    """The JSON stored in `Claim.decision` (money and confidence as decimal strings)."""
    confidence = None if decision.confidence is None else str(decision.confidence)
    if isinstance(decision, Offer):
        return {
            "kind": "offer",
            "grade": decision.grade,
            "confidence": confidence,
            "amount": str(decision.amount),
            "currency": decision.currency,
            "options": [
                {
                    "kind": str(o.kind),
                    "amount": None if o.amount is None else str(o.amount),
                    "description": o.description,
                }
                for o in decision.options
            ],
            "explanation": describe(decision),
        }
    record: dict[str, Any] = {
        "kind": "review",
        "grade": decision.grade,
        "confidence": confidence,
        "reasons": [str(r) for r in decision.reasons],
        "explanation": describe(decision),
    }
    if decision.retake:
        record["retake"] = [
            {"position": p.position, "photo_id": p.photo_id, "problem": str(p.problem), "message": p.message}
            for p in decision.retake
        ]
    return record


def _record(services: Services, claim_id: str, result: _Result) -> Outcome:
    decision = result.decision
    with services.sessions() as session:
        claim = claim_rows.load_for_update(session, claim_id, with_hashes=True)  # gather() reads them
        if claim is None:  # deleted meanwhile (not something the service does)
            return "not_found"
        if claim.state != ClaimState.ASSESSING:
            logger.info("claim %s already %s: dropping a duplicate assessment", claim_id, claim.state)
            return "already_done"
        now = utcnow()
        # The integrity checks, under the claim's lock, against everything committed before it.
        findings = gather(session, claim, services.policy, now)
        decision = with_integrity(decision, findings.reasons)
        result.decision = decision
        if result.basis is not None:
            claim.declared_value, claim.currency = result.basis  # what the decision was computed on
        _write(claim, result, now, services)
        claim.decision = {**(claim.decision or {}), "integrity": findings.evidence}
        offered = isinstance(decision, Offer)
        if not offered:
            # Deadlines, the repeat-claimant mark, no lease: the same as every other way into review.
            mark_entered_review(session, claim, now, services.deadlines)
        # Not offered: the decision is a Review (mypy cannot tie that to `offered`).
        reasons: Sequence[str] = () if offered else [str(r) for r in decision.reasons]  # type: ignore[union-attr]
        detail: dict[str, Any] = {"claim_probs": result.claim_probs, "per_photo": result.per_photo}
        if decision.confidence is not None:
            detail["confidence"] = str(decision.confidence)
        if result.problems:
            detail["problems"] = result.problems
        apply_transition(
            session,
            claim,
            ClaimState.OFFERED if offered else ClaimState.IN_REVIEW,
            Actor.SYSTEM,
            reasons=reasons,
            model_version=result.model_version,
            policy_version=decision.policy_version,
            detail=detail,
            now=now,
        )
        try:
            session.commit()
        except StaleDataError:
            session.rollback()
            logger.info("claim %s: a concurrent worker recorded its assessment first", claim_id)
            return "already_done"
    logger.info("claim %s assessed: %s", claim_id, "offered" if offered else "in_review")
    return "assessed"


def _write(claim: Claim, result: _Result, now: datetime, services: Services) -> None:
    decision = result.decision
    for photo in claim.photos:
        probs = result.per_photo.get(photo.id)
        photo.grade_probs = probs
        photo.grade = None if probs is None else int(np.argmax(probs))
        photo.model_version = None if probs is None else result.model_version
        damage_map = result.maps.get(photo.id)
        photo.damage_map = damage_map
        photo.heatmap_key = (
            None if damage_map is None else heatmap_key(str(result.model_version), photo.sha256)
        )
    claim.claim_grade = decision.grade
    claim.claim_probs = result.claim_probs
    claim.confidence = decision.confidence
    claim.model_version = result.model_version
    claim.policy_version = decision.policy_version
    claim.assessment_count = (claim.assessment_count or 0) + 1
    claim.decision = decision_record(decision)
    if isinstance(decision, Offer):
        claim.offer_expires_at = now + timedelta(hours=services.policy.offer_valid_hours)
        claim.decision_due_at = now  # decided: the customer has their answer
    else:
        claim.offer_expires_at = None  # deadlines: storage.review.mark_entered_review
