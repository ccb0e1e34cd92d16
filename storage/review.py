"""What happens to a claim when it enters human review, in ONE place for every path that gets there
(the assessment worker sending a claim to a person, a customer declining or letting an offer lapse).

Storage-level on purpose: workers must not import the API, and both need this. The review logic
itself (queue, leases, decisions) is in `services.reviewing`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from claims.deadlines import DeadlineConfig, Deadlines, review_deadlines
from storage.tables import Claim

logger = logging.getLogger(__name__)

# Only for a claim whose data the deadline rules refuse (see mark_entered_review).
FALLBACK_DECISION_WITHIN = timedelta(hours=24)


def prior_claims_of(claim: Claim):
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
