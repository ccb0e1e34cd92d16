"""Human review: the adjusters' queue, taking a case, deciding it, notes. The JSON API
(`api.routers.review`) and the web console (`api.console`) both call these functions, so every rule
lives here once.

Functions over a caller's `Session`, with `now` passed in. They flush (so a conflict shows up here, as
a `claims.errors` error) but never commit: the caller commits, or rolls back on any exception (the
console runs them inside its own commit-or-roll-back wrapper). `take`, `decide` and `note` are the
committing use cases the JSON API calls: one call each, the time taken here. The queries are the
repository functions of `storage.review` (and `storage.users`, `storage.photos`, `storage.claims`).

Rules
-----
- The queue is every claim in ``in_review``: overdue first, then by decision deadline, then by the
  time it entered review. `QueueFilters.value_band` compares the declared value in the claim's own
  currency, without conversion: ``under_500`` is below 500, ``500_2000`` from 500 up to (not
  including) 2000, ``over_2000`` 2000 and above (the fast-lane ceiling is "strictly below 2000", so
  a claim at 2000 is one the machine could not pay).
- SLA: a case's `sla` is its next pending deadline. The first response (1 working hour from entering
  review, see `claims.deadlines`) is met once an adjuster has taken the case, a person picking it up;
  until then the worse of the first-response and decision deadlines is shown, after that the
  decision deadline.
- Leases: an adjuster takes a case for `LEASE` (15 minutes; taking it again renews it). The take is
  one conditional UPDATE, so two adjusters can never both hold a case; an expired lease counts as
  unassigned and anyone may take the case. Only the holder of a live lease may decide, and the
  decision is written under the claim's optimistic `row_version` (and a row lock on PostgreSQL), so
  of two racing writers one loses with 409.
- Decisions: approve (pay what the policy pays for the model's grade), adjust (pay another amount,
  with a reason), deny (with a reason; only a person ever denies), request_photos (with a reason
  shown to the customer). Each records a `ReviewDecision` (with what the model said) and the
  adjuster's grade for every photo (`PhotoLabel`: labels for retraining), an audit transition by
  ``adjuster:<id>`` with reason ``adjuster_<action>``, and clears the lease. An approval is paid in
  cash at once (approved -> payout_instructed by the system).
- Repeat claims: `prior_claims` counts the other claims by the same customer or for the same
  tracking number; `watch` marks a case that has any (set when it enters review, and computed live).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from claims.deadlines import DeadlineConfig, SlaState, SlaStatus, review_deadlines, sla_status
from claims.errors import Conflict, NotFound, Unprocessable
from claims.lifecycle import Actor, ClaimState
from claims.money import MoneyError, format_money, parse_amount
from claims.policy import NUM_GRADES, PolicyConfig, payout_amount
from claims.text import has_control_characters
from models.heatmaps import render_heatmap
from services import payouts
from services.claims import load_visible
from storage import claims as claim_rows
from storage import metering
from storage import photos as photo_rows
from storage import review as review_rows
from storage import users as user_rows
from storage.objects import ObjectNotFound, ObjectStore
from storage.tables import AuditEvent, CaseNote, Claim, Photo, User, utcnow
from storage.transitions import append_note, apply_transition

logger = logging.getLogger("claimlane.review")

LEASE = timedelta(minutes=15)
MAX_NOTE = 4000
MAX_REASON = 2000
MAX_QUEUE_LIMIT = 500
# Only for a claim in review without stored deadlines and no deadline config to compute them from.
_FALLBACK_FIRST_RESPONSE = timedelta(hours=1)
_FALLBACK_DECISION = timedelta(hours=24)

ValueBand = Literal["under_500", "500_2000", "over_2000"]
QueueStatus = Literal["unassigned", "taken", "overdue"]
Action = Literal["approve", "adjust", "deny", "request_photos"]
ACTIONS: tuple[str, ...] = ("approve", "adjust", "deny", "request_photos")

# [low, high) in the claim's own currency; None is unbounded.
VALUE_BANDS: Mapping[str, tuple[Decimal | None, Decimal | None]] = {
    "under_500": (None, Decimal(500)),
    "500_2000": (Decimal(500), Decimal(2000)),
    "over_2000": (Decimal(2000), None),
}
_SLA_RANK = {SlaState.OVERDUE: 0, SlaState.DUE_SOON: 1, SlaState.ON_TIME: 2}


def in_value_band(value: Decimal, band: str) -> bool:
    low, high = VALUE_BANDS[band]
    return (low is None or value >= low) and (high is None or value < high)


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class QueueFilters:
    reason: str | None = None  # a reason code the claim went to review for (e.g. "low_confidence")
    value_band: ValueBand | None = None  # see VALUE_BANDS (claim's own currency)
    status: QueueStatus | None = None  # unassigned (no live lease), taken (live lease), overdue (SLA)
    limit: int = 100


@dataclass
class QueueItem:
    claim_id: str
    tracking_number: str
    state: str
    reasons: list[str]
    declared_value: Decimal
    currency: str
    model_grade: int | None
    confidence: Decimal | None
    entered_review_at: datetime | None
    first_response_due_at: datetime | None
    decision_due_at: datetime
    sla: SlaStatus
    watch: bool
    prior_claims: int
    lease_holder: str | None  # the holder's name, only while the lease is live
    lease_expires_at: datetime | None  # only while the lease is live
    lease_holder_id: int | None = None  # only while the lease is live


@dataclass
class PhotoDetail:
    id: str
    position: int
    url: str
    heatmap_url: str | None
    grade: int | None
    grade_probs: list[float] | None
    adjuster_grade: int | None  # from the latest decision that graded it


@dataclass
class PriorClaim:
    id: str
    created_at: datetime
    state: str
    declared_value: Decimal
    currency: str
    tracking_number: str
    outcome: str | None  # "paid 150.00 CNY (cash)", "reshipment", "denied"; None while open
    same_customer: bool = False
    same_tracking_number: bool = False


@dataclass
class CaseDetail:
    claim: Claim
    items: QueueItem  # the case as the queue shows it (named as the interface was agreed)
    photos: list[PhotoDetail]
    decision: dict[str, Any] | None
    history: list[PriorClaim]
    timeline: list[AuditEvent]
    notes: list[CaseNote]
    proposed_amount: Decimal | None
    labels: dict[str, int] = field(default_factory=dict)  # photo id -> latest adjuster grade
    integrity: Integrity | None = None  # the fraud checks' evidence, when the claim was assessed

    @property
    def item(self) -> QueueItem:
        return self.items


@dataclass
class PhotoMatchDetail:
    """A photo of this claim (`position`) that matches `other_photo_id` of `other_claim_id`."""

    position: int
    photo_id: str | None
    other_claim_id: str
    other_photo_id: str
    other_photo_position: int | None
    distance: int


@dataclass
class Integrity:
    """What the integrity checks found (services.integrity), for the adjuster."""

    reasons: list[str]
    shipment: dict[str, Any] | None
    claimed_value: str | None
    parcel_claims: list[dict[str, Any]]
    photo_matches: list[PhotoMatchDetail]
    recent_claims: int


def integrity_of(session: Session, claim: Claim) -> Integrity | None:
    """The integrity evidence recorded with the claim's decision, with the matched photos located."""
    record = (claim.decision or {}).get("integrity")
    if not isinstance(record, dict):
        return None
    by_position = {p.position: p.id for p in claim.photos}
    matches: list[PhotoMatchDetail] = []
    for m in record.get("photo_matches") or []:
        other = photo_rows.get(session, str(m.get("photo_id")))
        matches.append(
            PhotoMatchDetail(
                position=int(m.get("position", 0)),
                photo_id=by_position.get(int(m.get("position", 0))),
                other_claim_id=str(m.get("claim_id")),
                other_photo_id=str(m.get("photo_id")),
                other_photo_position=None if other is None else other.position,
                distance=int(m.get("distance", 0)),
            )
        )
    return Integrity(
        reasons=[str(r) for r in record.get("reasons") or []],
        shipment=record.get("shipment"),
        claimed_value=record.get("claimed_value"),
        parcel_claims=list(record.get("parcel_claims") or []),
        photo_matches=matches,
        recent_claims=int(record.get("recent_claims") or 0),
    )


# --------------------------------------------------------------------------------------------------
# URLs (the JSON API's; the console serves its own copies)


def photo_url(claim_id: str, photo_id: str) -> str:
    return f"/v1/claims/{claim_id}/photos/{photo_id}"


def heatmap_url(claim_id: str, photo_id: str) -> str:
    return f"/v1/review/{claim_id}/photos/{photo_id}/heatmap"


# --------------------------------------------------------------------------------------------------
# Shared pieces


def _lease_is_live(claim: Claim, now: datetime) -> bool:
    return (
        claim.lease_holder_id is not None
        and claim.lease_expires_at is not None
        and claim.lease_expires_at > now
    )


def _deadlines_of(claim: Claim, cfg: DeadlineConfig | None) -> tuple[datetime | None, datetime]:
    """(first response due, decision due): as stored when the claim entered review; computed for a
    claim that has none stored (in review from before deadlines were recorded)."""
    first, decision = claim.first_response_due_at, claim.decision_due_at
    if decision is not None and (first is not None or claim.entered_review_at is not None):
        return first, decision
    entered = claim.entered_review_at or claim.state_changed_at or claim.created_at
    if cfg is not None:
        try:
            computed = review_deadlines(
                submitted_at=claim.created_at,
                entered_review_at=max(entered, claim.created_at),
                declared_value=claim.declared_value,
                currency=claim.currency,
                cfg=cfg,
            )
            return first or computed.first_response_due, decision or computed.decision_due
        except ValueError:
            logger.warning("claim %s: cannot compute its deadlines", claim.id, exc_info=True)
    return first or entered + _FALLBACK_FIRST_RESPONSE, decision or entered + _FALLBACK_DECISION


def _sla(claim: Claim, first_due: datetime | None, decision_due: datetime, now: datetime) -> SlaStatus:
    decision = sla_status(decision_due, now)
    responded = claim.lease_holder_id is not None  # taken since it entered review (see module doc)
    if first_due is None or responded:
        return decision
    first = sla_status(first_due, now)
    return min((first, decision), key=lambda s: (_SLA_RANK[s.state], s.due))


def _review_reasons(session: Session, claims: Sequence[Claim]) -> dict[str, list[str]]:
    """Why each claim is in review: the reason codes of its latest move into in_review (the policy's
    reasons, or customer_declined / offer_expired), else those of its review decision record."""
    out: dict[str, list[str]] = {}
    for claim in claims:
        decision = claim.decision or {}
        if decision.get("kind") == "review":
            out[claim.id] = [str(r) for r in decision.get("reasons", [])]
    for claim_id, codes in review_rows.review_entries(session, [c.id for c in claims]):
        if codes:
            out[claim_id] = [str(c) for c in codes]
    return out


def _prior_counts(session: Session, claims: Sequence[Claim]) -> dict[str, int]:
    by_customer: dict[int, set[str]] = {}
    by_tracking: dict[str, set[str]] = {}
    for claim_id, customer_id, tracking in review_rows.related_claims(session, claims):
        by_customer.setdefault(customer_id, set()).add(claim_id)
        by_tracking.setdefault(tracking, set()).add(claim_id)
    return {
        c.id: len(
            (by_customer.get(c.customer_id, set()) | by_tracking.get(c.tracking_number, set())) - {c.id}
        )
        for c in claims
    }


def _items(
    session: Session, claims: Sequence[Claim], now: datetime, cfg: DeadlineConfig | None
) -> list[QueueItem]:
    reasons = _review_reasons(session, claims)
    priors = _prior_counts(session, claims)
    names = user_rows.names_by_id(session, (c.lease_holder_id for c in claims if _lease_is_live(c, now)))
    items = []
    for claim in claims:
        first_due, decision_due = _deadlines_of(claim, cfg)
        live = _lease_is_live(claim, now)
        prior = priors.get(claim.id, 0)
        items.append(
            QueueItem(
                claim_id=claim.id,
                tracking_number=claim.tracking_number,
                state=claim.state,
                reasons=reasons.get(claim.id, []),
                declared_value=claim.declared_value,
                currency=claim.currency,
                model_grade=claim.claim_grade,
                confidence=claim.confidence,
                entered_review_at=claim.entered_review_at,
                first_response_due_at=first_due,
                decision_due_at=decision_due,
                sla=_sla(claim, first_due, decision_due, now),
                watch=bool(claim.watch) or prior > 0,
                prior_claims=prior,
                lease_holder=names.get(claim.lease_holder_id) if live and claim.lease_holder_id else None,
                lease_expires_at=claim.lease_expires_at if live else None,
                lease_holder_id=claim.lease_holder_id if live else None,
            )
        )
    return items


def proposed_amount(claim: Claim, policy: PolicyConfig) -> Decimal | None:
    """What the policy pays for the model's grade (what `approve` pays); None without a grade."""
    if claim.claim_grade is None:
        return None
    try:
        return payout_amount(claim.claim_grade, claim.declared_value, claim.currency, policy)
    except ValueError:
        logger.warning("claim %s: the policy cannot price it", claim.id, exc_info=True)
        return None


def _load(session: Session, claim_id: str, *, lock: bool = False) -> Claim:
    claim = review_rows.load_claim(session, claim_id, lock=lock)
    if claim is None:
        raise NotFound("claim not found")
    return claim


def _hhmm(at: datetime) -> str:
    return f"{at:%H:%M} UTC"


def _not_in_review(claim: Claim) -> Conflict:
    return Conflict(
        f"the claim is not in review (it is {claim.state})",
        code="not_in_review",
        details={"state": claim.state},
    )


# --------------------------------------------------------------------------------------------------
# Queue and case


def list_queue(
    session: Session, filters: QueueFilters, now: datetime, deadlines_cfg: DeadlineConfig | None
) -> list[QueueItem]:
    """Claims in review, filtered, overdue first, then by decision deadline, then by entry into review."""
    if filters.value_band is not None and filters.value_band not in VALUE_BANDS:
        raise Unprocessable(f"unknown value band {filters.value_band!r}", code="validation_error")
    if filters.status is not None and filters.status not in ("unassigned", "taken", "overdue"):
        raise Unprocessable(f"unknown status {filters.status!r}", code="validation_error")
    limit = max(1, min(int(filters.limit), MAX_QUEUE_LIMIT))
    claims = review_rows.in_review(session)
    items = _items(session, claims, now, deadlines_cfg)
    if filters.reason:
        items = [i for i in items if filters.reason in i.reasons]
    if filters.value_band:
        items = [i for i in items if in_value_band(i.declared_value, filters.value_band)]
    if filters.status == "unassigned":
        items = [i for i in items if i.lease_holder_id is None]
    elif filters.status == "taken":
        items = [i for i in items if i.lease_holder_id is not None]
    elif filters.status == "overdue":
        items = [i for i in items if i.sla.state == SlaState.OVERDUE]
    floor = datetime.min.replace(tzinfo=now.tzinfo)
    items.sort(
        key=lambda i: (
            i.sla.state != SlaState.OVERDUE,
            i.decision_due_at,
            i.entered_review_at or floor,
            i.claim_id,
        )
    )
    return items[:limit]


def _outcome(claim: Claim) -> str | None:
    state = ClaimState(claim.state)
    if state is ClaimState.DENIED:
        return "denied"
    if state is ClaimState.PAYOUT_INSTRUCTED:
        if claim.payout_amount is None:
            return claim.accepted_option or "paid"
        return f"paid {format_money(claim.payout_amount, claim.currency)} ({claim.accepted_option or 'cash'})"
    return None


def case_detail(
    session: Session,
    claim_id: str,
    now: datetime,
    deadlines_cfg: DeadlineConfig | None,
    policy: PolicyConfig,
) -> CaseDetail:
    """One case (any state: a decided case can still be read). 404 if there is no such claim."""
    claim = claim_rows.get_with_history(session, claim_id)
    if claim is None:
        raise NotFound("claim not found")
    item = _items(session, [claim], now, deadlines_cfg)[0]

    labels: dict[str, int] = dict(review_rows.claim_labels(session, claim.id))  # the latest per photo
    photos = [
        PhotoDetail(
            id=p.id,
            position=p.position,
            url=photo_url(claim.id, p.id),
            heatmap_url=heatmap_url(claim.id, p.id) if p.heatmap_key else None,
            grade=p.grade,
            grade_probs=p.grade_probs,
            adjuster_grade=labels.get(p.id),
        )
        for p in sorted(claim.photos, key=lambda p: p.position)
    ]
    history = [
        PriorClaim(
            id=c.id,
            created_at=c.created_at,
            state=c.state,
            declared_value=c.declared_value,
            currency=c.currency,
            tracking_number=c.tracking_number,
            outcome=_outcome(c),
            same_customer=c.customer_id == claim.customer_id,
            same_tracking_number=c.tracking_number == claim.tracking_number,
        )
        for c in review_rows.prior_claims(session, claim)
    ]
    notes = review_rows.case_notes(session, claim.id)
    return CaseDetail(
        claim=claim,
        items=item,
        photos=photos,
        decision=claim.decision,
        history=history,
        timeline=sorted(claim.events, key=lambda e: e.id),
        notes=notes,
        proposed_amount=proposed_amount(claim, policy),
        labels=labels,
        integrity=integrity_of(session, claim),
    )


# --------------------------------------------------------------------------------------------------
# Taking a case


def take_case(session: Session, claim_id: str, adjuster: User, now: datetime) -> datetime:
    """Take (or renew) the lease on a case in review; returns when it expires.

    One conditional UPDATE decides it: it matches only while the case is in review and free (no
    holder, an expired lease, or this adjuster already), so of two adjusters racing, exactly one
    gets the row and the other gets 409. The row version moves too, so a decision written under the
    previous holder's read of the claim fails (see decide_case).
    """
    me = adjuster.id
    expires = now + LEASE
    before = review_rows.lease_of(session, claim_id)
    renewed = before is not None and before[0] == me and before[1] is not None and before[1] > now
    if not review_rows.take_lease(session, claim_id, me, now, expires):
        claim = _load(session, claim_id)
        if claim.state != ClaimState.IN_REVIEW:
            raise _not_in_review(claim)
        until = claim.lease_expires_at or now
        holder = user_rows.names_by_id(session, [claim.lease_holder_id]).get(claim.lease_holder_id or -1)
        raise Conflict(
            f"taken by another adjuster until {_hhmm(until)}",
            code="case_taken",
            details={"lease_holder": holder, "lease_expires_at": until.isoformat()},
        )
    claim = _load(session, claim_id)
    if before is not None and before[0] is None:  # nobody has held it since it (re-)entered review
        metering.on_commit(session, metering.first_response_effect(claim.first_response_due_at, now))
    append_note(
        session,
        claim,
        Actor.ADJUSTER,
        me,
        "case_taken",
        {"lease_expires_at": expires.isoformat(), "renewed": renewed},
        now=now,
    )
    session.flush()
    return expires


# --------------------------------------------------------------------------------------------------
# Deciding a case


def _field(name: str, message: str) -> dict[str, str]:
    return {"field": name, "location": "body", "message": message, "type": "value_error"}


def _check_grades(claim: Claim, grades: Any, errors: list[dict[str, str]]) -> dict[str, int]:
    if not isinstance(grades, Mapping):
        errors.append(_field("grades", "must map every photo id to a grade 0-3"))
        return {}
    photo_ids = [p.id for p in sorted(claim.photos, key=lambda p: p.position)]
    out: dict[str, int] = {}
    for key, value in grades.items():
        key = str(key)
        if key not in photo_ids:
            errors.append(_field(f"grades.{key}", "is not a photo of this claim"))
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < NUM_GRADES:
            errors.append(
                _field(f"grades.{key}", f"must be a whole number 0-{NUM_GRADES - 1}, got {value!r}")
            )
        else:
            out[key] = value
    missing = [pid for pid in photo_ids if pid not in {str(k) for k in grades}]
    if missing:
        errors.append(_field("grades", f"give a grade 0-3 for every photo; missing: {', '.join(missing)}"))
    return {pid: out[pid] for pid in photo_ids if pid in out}


def _check_reason(
    reason: str | None, required: bool, action: str, errors: list[dict[str, str]]
) -> str | None:
    text = (reason or "").strip()
    if not text:
        if required:
            errors.append(_field("reason", f"a reason is required to {action.replace('_', ' ')}"))
        return None
    if len(text) > MAX_REASON:
        errors.append(_field("reason", f"must be at most {MAX_REASON} characters, got {len(text)}"))
    elif has_control_characters(text):
        errors.append(_field("reason", "must not contain control characters"))
    return text


def _parse(amount: str, currency: str, errors: list[dict[str, str]]) -> Decimal | None:
    try:
        return parse_amount(amount, currency)
    except MoneyError as exc:
        errors.append(_field("amount", str(exc)))
        return None


def _check_amount(
    claim: Claim, action: str, amount: str | None, policy: PolicyConfig, errors: list[dict[str, str]]
) -> Decimal | None:
    """The amount to pay (approve, adjust) or None (deny, request_photos)."""
    given = amount is not None and str(amount).strip() != ""
    currency = claim.currency
    if action in ("deny", "request_photos"):
        if given:
            errors.append(_field("amount", f"{action} pays nothing: leave the amount out"))
        return None
    if action == "approve":
        proposed = proposed_amount(claim, policy)
        if proposed is None or proposed <= 0:
            grade = "no grade" if claim.claim_grade is None else f"grade {claim.claim_grade}"
            errors.append(
                _field(
                    "action",
                    f"the policy pays nothing for the model's assessment ({grade}): to pay, use "
                    "adjust with an amount and a reason",
                )
            )
            return None
        if given:
            value = _parse(str(amount), currency, errors)
            if value is not None and value != proposed:
                errors.append(
                    _field(
                        "amount",
                        f"approve pays the proposed {format_money(proposed, currency)}; to pay "
                        f"{format_money(value, currency)} use adjust with a reason",
                    )
                )
        return proposed
    # adjust
    if not given:
        errors.append(_field("amount", "an amount is required to adjust"))
        return None
    value = _parse(str(amount), currency, errors)
    if value is None:
        return None
    if value > claim.declared_value:
        errors.append(
            _field(
                "amount",
                f"{format_money(value, currency)} is more than the declared value "
                f"{format_money(claim.declared_value, currency)}",
            )
        )
    limit = policy.coverage_limit.get(currency)
    if limit is not None and value > limit:
        errors.append(
            _field(
                "amount",
                f"{format_money(value, currency)} is more than the coverage limit {format_money(limit, currency)}",
            )
        )
    return value


def _explanation(action: str, amount: Decimal | None, currency: str, reason: str | None) -> str:
    if action == "approve":
        assert amount is not None
        return (
            f"An adjuster reviewed your photos and approved your claim: {format_money(amount, currency)} "
            "is being paid to you."
        )
    if action == "adjust":
        assert amount is not None
        return (
            f"An adjuster reviewed your photos and approved {format_money(amount, currency)} for your "
            f"claim: {reason}"
        )
    if action == "deny":
        return f"An adjuster reviewed your claim and could not approve it: {reason}"
    return f"An adjuster needs more photos of the damage: {reason}"


def decide_case(
    session: Session,
    claim_id: str,
    adjuster: User,
    action: str,
    *,
    amount: str | None,
    reason: str | None,
    grades: dict[str, int],
    now: datetime,
    policy: PolicyConfig,
) -> Claim:
    """Record an adjuster's decision on a case they hold (see the module doc). 404 no such claim;
    409 not in review, not holding a live lease, or a concurrent change; 422 invalid input (every
    problem listed in `details`)."""
    me = adjuster.id
    claim = _load(session, claim_id, lock=True)
    if claim.state != ClaimState.IN_REVIEW:
        raise _not_in_review(claim)
    if not _lease_is_live(claim, now) or claim.lease_holder_id != me:
        if _lease_is_live(claim, now):
            raise Conflict(
                f"taken by another adjuster until {_hhmm(claim.lease_expires_at)}",  # type: ignore[arg-type]
                code="case_taken",
            )
        raise Conflict(
            "take the case first: you do not hold it, or your hold has expired", code="lease_required"
        )

    errors: list[dict[str, str]] = []
    if action not in ACTIONS:
        errors.append(_field("action", f"must be one of {', '.join(ACTIONS)}, got {action!r}"))
        raise Unprocessable(_summary(errors), code="validation_error", details=errors)
    labels = _check_grades(claim, grades, errors)
    value = _check_amount(claim, action, amount, policy, errors)
    text = _check_reason(reason, action != "approve", action, errors)
    if errors:
        raise Unprocessable(_summary(errors), code="validation_error", details=errors)

    currency = claim.currency
    amount_text = None if value is None else str(value)
    detail = {"reason": text, "amount": amount_text, "currency": currency, "grades": labels}
    target = {
        "approve": ClaimState.APPROVED,
        "adjust": ClaimState.APPROVED,
        "deny": ClaimState.DENIED,
        "request_photos": ClaimState.NEEDS_PHOTOS,
    }[action]
    review_rows.add_decision(session, claim, me, action, amount=value, reason=text, labels=labels, at=now)
    apply_transition(
        session,
        claim,
        target,
        Actor.ADJUSTER,
        user_id=me,
        reasons=[f"adjuster_{action}"],
        detail=detail,
        model_version=claim.model_version,
        policy_version=claim.policy_version,
        now=now,
    )
    explanation = _explanation(action, value, currency, text)
    if target is ClaimState.APPROVED:
        assert value is not None
        record: dict[str, Any] = {
            "kind": "approved",
            "amount": amount_text,
            "currency": currency,
            "option": "cash",
            "explanation": explanation,
        }
        if action == "adjust":
            record["reason"] = text
        claim.decision = record
        claim.accepted_option = "cash"
        claim.payout_amount = value
        apply_transition(
            session,
            claim,
            ClaimState.PAYOUT_INSTRUCTED,
            Actor.SYSTEM,
            detail={"option": "cash", "payout_amount": amount_text, "currency": currency},
            policy_version=claim.policy_version,
            now=now,
        )
        payouts.instruct(session, claim, now)  # the finance outbox, in this same transaction
    elif target is ClaimState.DENIED:
        claim.decision = {"kind": "denied", "reason": text, "explanation": explanation}
    else:
        claim.decision = {"kind": "needs_photos", "reason": text, "explanation": explanation}
        claim.decision_due_at = None  # the customer's turn: nothing to expect until photos arrive
    claim.lease_holder_id = None
    claim.lease_expires_at = None
    claim.decided_by_id = me
    claim.decided_at = now
    try:
        session.flush()
    except StaleDataError:
        raise Conflict(
            "the case was changed by someone else at the same time; reload it and decide again",
            code="concurrent_update",
        ) from None
    return claim


def _summary(errors: list[dict[str, str]]) -> str:
    return "invalid decision: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)


# --------------------------------------------------------------------------------------------------
# Notes


def add_note(session: Session, claim_id: str, author: User, text: str, now: datetime) -> CaseNote:
    """A staff note on a case (any state; no lease needed), also recorded in the audit log.
    Customers never see notes."""
    me = author.id
    body = (text or "").strip()
    if not 1 <= len(body) <= MAX_NOTE or "\x00" in body:
        message = (
            "a note cannot be empty"
            if not body
            else "must not contain a NUL character"
            if "\x00" in body
            else f"must be at most {MAX_NOTE} characters, got {len(body)}"
        )
        errors = [_field("text", message)]
        raise Unprocessable(f"invalid note: text: {message}", code="validation_error", details=errors)
    claim = _load(session, claim_id)
    note = review_rows.add_case_note(session, claim.id, me, body, now)
    append_note(session, claim, Actor.ADJUSTER, me, "note", {"note_id": note.id, "text": body}, now=now)
    session.flush()
    return note


# --------------------------------------------------------------------------------------------------
# Committing use cases (the JSON API: one call per request)


def take(session: Session, claim_id: str, adjuster: User) -> datetime:
    """`take_case` now, committed; returns when the lease expires."""
    expires = take_case(session, claim_id, adjuster, utcnow())
    session.commit()
    return expires


def decide(
    session: Session,
    claim_id: str,
    adjuster: User,
    action: str,
    *,
    amount: str | None,
    reason: str | None,
    grades: dict[str, int],
    policy: PolicyConfig,
) -> Claim:
    """`decide_case` now, committed; returns the claim as the adjuster may see it, read fresh after
    the commit (with its photos and audit events)."""
    decide_case(
        session,
        claim_id,
        adjuster,
        action,
        amount=amount,
        reason=reason,
        grades=grades,
        now=utcnow(),
        policy=policy,
    )
    session.commit()
    return load_visible(session, claim_id, adjuster)


def note(session: Session, claim_id: str, author: User, text: str) -> CaseNote:
    """`add_note` now, committed."""
    created = add_note(session, claim_id, author, text, utcnow())
    session.commit()
    return created


# --------------------------------------------------------------------------------------------------
# Photos


def case_photo(session: Session, claim_id: str, photo_id: str) -> Photo:
    """A photo of the case; NotFound when the claim has no such photo."""
    photo = photo_rows.get_of_claim(session, claim_id, photo_id)
    if photo is None:
        raise NotFound("photo not found")
    return photo


def heatmap_png(session: Session, store: ObjectStore, claim_id: str, photo_id: str) -> bytes:
    """The PNG heatmap layer of a photo of the case, rendered from the photo's damage map on first
    view and kept in the store (the assessment never waits for it). NotFound when the photo has none."""
    photo = photo_rows.get(session, photo_id)
    if photo is None or photo.claim_id != claim_id or not photo.heatmap_key:
        raise NotFound("no heatmap for this photo")
    try:
        return store.get(photo.heatmap_key)
    except ObjectNotFound:
        if photo.damage_map is None:
            logger.error("claim %s photo %s: heatmap %s is missing", claim_id, photo_id, photo.heatmap_key)
            raise NotFound("heatmap not available") from None
    png = render_heatmap(np.asarray(photo.damage_map, dtype=np.float32), (photo.width, photo.height))
    store.put(photo.heatmap_key, png, "image/png")
    return png
