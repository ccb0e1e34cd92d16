"""What happens to a claim when it enters human review, in ONE place for every path that gets there
(the assessment worker sending a claim to a person, a customer declining or letting an offer lapse).

Storage-level on purpose: workers must not import the API, and both need this. The review logic
itself (queue, leases, decisions) is in `services.reviewing`; the queries it (and the export of
reviewed photos, `training.reviewed`) runs are the repository functions below.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from claims.deadlines import DeadlineConfig, Deadlines, review_deadlines
from claims.lifecycle import ClaimState
from storage.tables import AuditEvent, CaseNote, Claim, Photo, PhotoLabel, ReviewDecision

logger = logging.getLogger(__name__)

# Only for a claim whose data the deadline rules refuse (see mark_entered_review).
FALLBACK_DECISION_WITHIN = timedelta(hours=24)


# Ids per IN (...) list: well below every database's bound-parameter limit.
BATCH = 500


def prior_claims_of(claim: Claim) -> ColumnElement[bool]:
    """A WHERE clause for the other claims by the same customer or for the same tracking number."""
    return (Claim.id != claim.id) & or_(
        Claim.customer_id == claim.customer_id, Claim.tracking_number == claim.tracking_number
    )


def count_prior_claims(session: Session, claim: Claim) -> int:
    """How many other claims share the customer or the tracking number with `claim` (a repeat claim:
    the same customer again, or someone else claiming for the same parcel). Does not flush."""
    with session.no_autoflush:
        return int(session.scalar(select(func.count()).select_from(Claim).where(prior_claims_of(claim))) or 0)


def mark_entered_review(session: Session, claim: Claim, now: datetime, deadlines_cfg: DeadlineConfig) -> None:
    """Record that `claim` enters review at `now` (call it next to the transition to in_review).

    - `entered_review_at` = now (the latest entry: a claim back from needs_photos re-enters);
    - `first_response_due_at` = now + the first-response working time (so recomputed on re-entry);
    - `decision_due_at` = the decision deadline, which depends on the submission only (so a claim that
      comes back with more photos keeps its decision deadline: asking for photos does not reset it);
    - `watch` = whether another claim shares its customer or its tracking number;
    - the lease is cleared: nobody holds a claim that has just (re-)entered the queue.

    Does not flush or commit; the caller's transaction writes it with the transition. Input the
    deadline rules refuse (old data: an unknown currency, a submission time after `now`) gets
    wall-clock deadlines and a logged error rather than an exception: a claim must reach a person
    whatever its data, and the assessment worker must never crash-loop on it.
    """
    try:
        deadlines = review_deadlines(
            submitted_at=claim.created_at or now,
            entered_review_at=now,
            declared_value=claim.declared_value,
            currency=claim.currency,
            cfg=deadlines_cfg,
        )
    except ValueError:
        logger.exception("claim %s: cannot compute its review deadlines; using wall-clock ones", claim.id)
        deadlines = Deadlines(
            first_response_due=now + deadlines_cfg.first_response,
            decision_due=claim.decision_due_at or now + FALLBACK_DECISION_WITHIN,
        )
    claim.entered_review_at = now
    claim.first_response_due_at = deadlines.first_response_due
    claim.decision_due_at = deadlines.decision_due
    claim.watch = count_prior_claims(session, claim) > 0
    claim.lease_holder_id = None
    claim.lease_expires_at = None


# --------------------------------------------------------------------------------------------------
# The queue and a case (`services.reviewing`)


def in_review(session: Session) -> list[Claim]:
    """Every claim in ``in_review``, read fresh (the queue filters and sorts them)."""
    return list(
        session.scalars(
            select(Claim)
            .where(Claim.state == ClaimState.IN_REVIEW.value)
            .execution_options(populate_existing=True)
        ).all()
    )


def load_claim(session: Session, claim_id: str, *, lock: bool = False) -> Claim | None:
    """The claim with its photos, read fresh; with `lock`, row-locked until the transaction ends
    (PostgreSQL; SQLite has no row locks, and needs none)."""
    stmt = (
        select(Claim)
        .where(Claim.id == claim_id)
        .options(selectinload(Claim.photos))
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(of=Claim)
    return session.execute(stmt).scalar_one_or_none()


def review_entries(session: Session, claim_ids: Sequence[str]) -> list[tuple[str, list[str] | None]]:
    """(claim id, reason codes) of every move of these claims into ``in_review``, oldest first within
    each batch of `BATCH` ids (so the last row of a claim is its latest entry)."""
    out: list[tuple[str, list[str] | None]] = []
    for start in range(0, len(claim_ids), BATCH):
        rows = session.execute(
            select(AuditEvent.claim_id, AuditEvent.reason_codes)
            .where(
                AuditEvent.claim_id.in_(claim_ids[start : start + BATCH]),
                AuditEvent.action == "transition",
                AuditEvent.to_state == ClaimState.IN_REVIEW.value,
            )
            .order_by(AuditEvent.id)
        ).all()
        out.extend((claim_id, codes) for claim_id, codes in rows)
    return out


def related_claims(session: Session, claims: Sequence[Claim]) -> list[tuple[str, int, str]]:
    """(id, customer_id, tracking_number) of every claim sharing a customer or a tracking number with
    one of `claims` (themselves included)."""
    if not claims:
        return []
    customers = sorted({c.customer_id for c in claims})
    trackings = sorted({c.tracking_number for c in claims})
    rows = session.execute(
        select(Claim.id, Claim.customer_id, Claim.tracking_number).where(
            or_(Claim.customer_id.in_(customers), Claim.tracking_number.in_(trackings))
        )
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def prior_claims(session: Session, claim: Claim) -> list[Claim]:
    """The other claims by the same customer or for the same tracking number, newest first."""
    return list(
        session.scalars(
            select(Claim).where(prior_claims_of(claim)).order_by(Claim.created_at.desc(), Claim.id)
        )
    )


def claim_labels(session: Session, claim_id: str) -> list[tuple[str, int]]:
    """(photo id, grade) of every adjuster label on the claim's photos, oldest first (so the last one
    of a photo is its latest grade)."""
    return [
        (photo_id, grade)
        for photo_id, grade in session.execute(
            select(PhotoLabel.photo_id, PhotoLabel.grade)
            .join(ReviewDecision, PhotoLabel.decision_id == ReviewDecision.id)
            .where(ReviewDecision.claim_id == claim_id)
            .order_by(PhotoLabel.id)
        )
    ]


def case_notes(session: Session, claim_id: str) -> list[CaseNote]:
    """The claim's staff notes with their authors, oldest first."""
    return list(
        session.scalars(
            select(CaseNote)
            .where(CaseNote.claim_id == claim_id)
            .options(selectinload(CaseNote.author))
            .order_by(CaseNote.id)
        )
    )


# --------------------------------------------------------------------------------------------------
# Leases, decisions, notes (writes; the caller flushes and commits)


def lease_of(session: Session, claim_id: str) -> tuple[int | None, datetime | None] | None:
    """(lease holder id, lease expiry) of the claim as the database has it; None: no such claim."""
    row = session.execute(
        select(Claim.lease_holder_id, Claim.lease_expires_at).where(Claim.id == claim_id)
    ).first()
    return None if row is None else (row[0], row[1])


def take_lease(session: Session, claim_id: str, holder_id: int, now: datetime, expires: datetime) -> bool:
    """Give `holder_id` the lease until `expires`, in ONE conditional UPDATE that matches only while the
    claim is in review and free (no holder, an expired lease, or this holder already): of two racing
    adjusters exactly one gets True. The row version moves too, so a write under an older read fails."""
    result = session.execute(
        update(Claim)
        .where(
            Claim.id == claim_id,
            Claim.state == ClaimState.IN_REVIEW.value,
            or_(
                Claim.lease_holder_id.is_(None),
                Claim.lease_holder_id == holder_id,
                Claim.lease_expires_at.is_(None),
                Claim.lease_expires_at <= now,
            ),
        )
        .values(lease_holder_id=holder_id, lease_expires_at=expires, row_version=Claim.row_version + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def add_decision(
    session: Session,
    claim: Claim,
    adjuster_id: int,
    action: str,
    *,
    amount: Decimal | None,
    reason: str | None,
    labels: Mapping[str, int],
    at: datetime,
) -> ReviewDecision:
    """Add an adjuster's decision, with what the model said and a label per graded photo (the labels
    for retraining). Not flushed."""
    decision = ReviewDecision(
        claim_id=claim.id,
        adjuster_id=adjuster_id,
        at=at,
        action=action,
        amount=amount,
        currency=claim.currency,
        reason=reason,
        model_version=claim.model_version,
        model_grade=claim.claim_grade,
        model_probs=claim.claim_probs,
        labels=[
            PhotoLabel(photo_id=pid, grade=grade, adjuster_id=adjuster_id, at=at)
            for pid, grade in labels.items()
        ],
    )
    session.add(decision)
    return decision


def add_case_note(session: Session, claim_id: str, author_id: int, text: str, at: datetime) -> CaseNote:
    """Add a staff note and flush it (the audit entry that records it names its id)."""
    note = CaseNote(claim_id=claim_id, author_id=author_id, at=at, text=text)
    session.add(note)
    session.flush()
    return note


# --------------------------------------------------------------------------------------------------
# Labels for evaluation and retraining (`services.promotion`, `training.reviewed`)


def latest_labelled_originals(session: Session, limit: int) -> list[tuple[int, str]]:
    """(grade, original photo key) of the latest label of each labelled photo, most recently labelled
    first, at most `limit`."""
    latest = (
        select(PhotoLabel.photo_id, func.max(PhotoLabel.id).label("label_id"))
        .group_by(PhotoLabel.photo_id)
        .subquery()
    )
    rows = session.execute(
        select(PhotoLabel.grade, Photo.original_key)
        .join(latest, PhotoLabel.id == latest.c.label_id)
        .join(Photo, Photo.id == PhotoLabel.photo_id)
        .order_by(PhotoLabel.at.desc(), PhotoLabel.id.desc())
        .limit(limit)
    ).all()
    return [(grade, key) for grade, key in rows]


def labelled_photos(session: Session) -> list[tuple[PhotoLabel, ReviewDecision, Photo]]:
    """Every label with its decision and photo, in decision order (then label order)."""
    rows = session.execute(
        select(PhotoLabel, ReviewDecision, Photo)
        .join(ReviewDecision, PhotoLabel.decision_id == ReviewDecision.id)
        .join(Photo, PhotoLabel.photo_id == Photo.id)
        .order_by(ReviewDecision.at, ReviewDecision.id, PhotoLabel.id)
    ).all()
    return [(label, decision, photo) for label, decision, photo in rows]


def all_decisions(session: Session) -> list[ReviewDecision]:
    """Every adjuster decision, oldest first."""
    return list(session.scalars(select(ReviewDecision).order_by(ReviewDecision.at, ReviewDecision.id)).all())


def machine_decisions(session: Session, claim_ids: Sequence[str]) -> dict[str, list[AuditEvent]]:
    """Per claim, the system's moves out of `assessing` (its offers and its sends to review), oldest
    first; queried in batches of `BATCH` ids."""
    out: dict[str, list[AuditEvent]] = {}
    for start in range(0, len(claim_ids), BATCH):
        events = session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.claim_id.in_(claim_ids[start : start + BATCH]),
                AuditEvent.action == "transition",
                AuditEvent.from_state == ClaimState.ASSESSING.value,
            )
            .order_by(AuditEvent.id)
        )
        for event in events:
            out.setdefault(event.claim_id, []).append(event)
    return out
