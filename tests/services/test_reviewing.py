"""`services.reviewing` over a Session: the queue's order and filters, leases (races on SQLite and on
PostgreSQL), decisions and their records, notes, and `storage.review.mark_entered_review`."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from claims.deadlines import SlaState, review_deadlines
from claims.errors import Conflict, NotFound, Unprocessable
from claims.lifecycle import Actor, ClaimState
from claims.policy import PolicyConfig
from config.settings import Settings
from services import reviewing
from services.context import Services, build_services
from storage.review import mark_entered_review
from storage.tables import AuditEvent, CaseNote, Claim, Photo, PhotoLabel, ReviewDecision, User, utcnow
from storage.transitions import apply_transition

POLICY = PolicyConfig(
    version="test-review",
    grade_fractions=(Decimal("0"), Decimal("0"), Decimal("0.5"), Decimal("1")),
    fast_lane_grades=frozenset({2, 3}),
)


def _services(tmp_path: Path, url: str = "") -> Services:
    # No model is needed here: claims are put in review straight through storage.
    return build_services(Settings(data_dir=tmp_path / "data", database_url=url))


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = _services(tmp_path)
    yield services
    services.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request, tmp_path: Path) -> Iterator[Services]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    services = _services(tmp_path, url)
    yield services
    services.close()


def add_user(services: Services, role: str = "adjuster") -> User:
    with services.sessions() as session:
        user = User(name=f"{role}-{uuid.uuid4().hex[:8]}", role=role, key_prefix="test", key_hash="0" * 64)
        session.add(user)
        session.commit()
        return user


def in_review(
    services: Services,
    *,
    customer: User | None = None,
    tracking: str | None = None,
    declared: str = "300.00",
    grade: int | None = 2,
    photos: int = 2,
    at: datetime | None = None,
    reasons: tuple[str, ...] = ("low_confidence",),
) -> str:
    """A claim assessed and sent to review at `at`, straight through storage."""
    customer = customer or add_user(services, "customer")
    at = at or utcnow()
    with services.sessions() as session:
        claim = Claim(
            customer_id=customer.id,
            tracking_number=tracking or f"T-{uuid.uuid4().hex[:10]}",
            declared_value=Decimal(declared),
            currency="CNY",
            created_at=at - timedelta(minutes=5),
        )
        for position in range(1, photos + 1):
            claim.photos.append(
                Photo(
                    position=position,
                    sha256=uuid.uuid4().hex,
                    original_key=f"o/{position}",
                    derivative_key=f"d/{position}",
                    content_type="image/jpeg",
                    byte_size=1,
                    width=100,
                    height=100,
                    grade=grade,
                    grade_probs=None if grade is None else [0.1, 0.1, 0.1, 0.7],
                )
            )
        session.add(claim)
        apply_transition(session, claim, ClaimState.SUBMITTED, Actor.CUSTOMER, user_id=customer.id, now=at)
        apply_transition(session, claim, ClaimState.ASSESSING, Actor.SYSTEM, now=at)
        claim.claim_grade = grade
        claim.claim_probs = None if grade is None else [0.1, 0.1, 0.1, 0.7]
        claim.confidence = None if grade is None else Decimal("0.7")
        claim.model_version = "tiny-0.0.1"
        claim.decision = {"kind": "review", "grade": grade, "reasons": list(reasons), "explanation": "..."}
        session.flush()
        mark_entered_review(session, claim, at, services.deadlines)
        apply_transition(session, claim, ClaimState.IN_REVIEW, Actor.SYSTEM, reasons=reasons, now=at)
        session.commit()
        return claim.id


def load(services: Services, claim_id: str) -> Claim:
    with services.sessions() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        _ = claim.photos
        return claim


def grades_for(services: Services, claim_id: str, grade: int = 2) -> dict[str, int]:
    return {p.id: grade for p in load(services, claim_id).photos}


def take(services: Services, claim_id: str, user: User, now: datetime) -> datetime:
    with services.sessions() as session:
        expires = reviewing.take_case(session, claim_id, user, now)
        session.commit()
        return expires


def decide(services: Services, claim_id: str, user: User, action: str, now: datetime, **kwargs) -> Claim:
    kwargs.setdefault("grades", grades_for(services, claim_id))
    kwargs.setdefault("amount", None)
    kwargs.setdefault("reason", None)
    with services.sessions() as session:
        claim = reviewing.decide_case(session, claim_id, user, action, now=now, policy=POLICY, **kwargs)
        session.commit()
        return claim


def queue(services: Services, now: datetime, **filters) -> list[reviewing.QueueItem]:
    with services.sessions() as session:
        return reviewing.list_queue(session, reviewing.QueueFilters(**filters), now, services.deadlines)


# --------------------------------------------------------------------------------------------------
# Entering review


def test_entering_review_sets_the_deadlines_and_the_watch_mark(services: Services) -> None:
    at = utcnow()
    customer = add_user(services, "customer")
    first = load(services, in_review(services, customer=customer, at=at))
    expected = review_deadlines(
        submitted_at=first.created_at,
        entered_review_at=at,
        declared_value=first.declared_value,
        currency="CNY",
        cfg=services.deadlines,
    )
    assert first.entered_review_at == at
    assert first.first_response_due_at == expected.first_response_due
    assert first.decision_due_at == expected.decision_due
    assert first.watch is False and first.lease_holder_id is None
    again = load(services, in_review(services, customer=customer, at=at))
    assert again.watch is True  # the same customer claimed before


# --------------------------------------------------------------------------------------------------
# Queue


def test_queue_is_overdue_first_then_by_decision_deadline(services: Services) -> None:
    now = utcnow()
    ids = {name: in_review(services, at=now - timedelta(minutes=10)) for name in ("c1", "c2", "c3", "c4")}
    deadlines = {
        "c1": (now + timedelta(hours=3), now + timedelta(days=3)),
        "c2": (now + timedelta(hours=3), now + timedelta(days=1)),
        "c3": (now - timedelta(hours=1), now + timedelta(days=5)),  # nobody answered in time
        "c4": (now + timedelta(hours=3), now - timedelta(hours=1)),  # decision overdue
    }
    with services.sessions() as session:
        for name, (first, decision) in deadlines.items():
            claim = session.get(Claim, ids[name])
            claim.first_response_due_at, claim.decision_due_at = first, decision
        session.commit()

    items = queue(services, now)
    assert [i.claim_id for i in items] == [ids["c4"], ids["c3"], ids["c2"], ids["c1"]]
    assert [i.sla.state for i in items] == [
        SlaState.OVERDUE,
        SlaState.OVERDUE,
        SlaState.ON_TIME,
        SlaState.ON_TIME,
    ]
    assert items[1].sla.due == deadlines["c3"][0]  # the first-response deadline is the one missed
    assert [i.claim_id for i in queue(services, now, status="overdue")] == [ids["c4"], ids["c3"]]
    assert len(queue(services, now, limit=2)) == 2

    # Taking c3 is its first response: what is left is its decision deadline, days away.
    adjuster = add_user(services)
    take(services, ids["c3"], adjuster, now)
    items = queue(services, now)
    assert [i.claim_id for i in items] == [ids["c4"], ids["c2"], ids["c1"], ids["c3"]]
    assert items[-1].sla.state == SlaState.ON_TIME


def test_queue_filters_and_items(services: Services) -> None:
    now = utcnow()
    small = in_review(services, declared="499.99", reasons=("grade_not_fast_lane",))
    middle = in_review(services, declared="500.00", reasons=("low_confidence",))
    large = in_review(
        services, declared="2000.00", reasons=("value_above_fast_lane_ceiling", "low_confidence")
    )
    adjuster = add_user(services)
    take(services, middle, adjuster, now)

    def ids(**filters) -> set[str]:
        return {i.claim_id for i in queue(services, now, **filters)}

    assert ids(value_band="under_500") == {small}
    assert ids(value_band="500_2000") == {middle}
    assert ids(value_band="over_2000") == {large}
    assert ids(reason="low_confidence") == {middle, large}
    assert ids(reason="grade_not_fast_lane") == {small}
    assert ids(status="taken") == {middle}
    assert ids(status="unassigned") == {small, large}
    assert ids(status="unassigned", value_band="over_2000", reason="low_confidence") == {large}

    item = next(i for i in queue(services, now) if i.claim_id == middle)
    assert item.lease_holder == adjuster.name and item.lease_holder_id == adjuster.id
    assert item.lease_expires_at == now + reviewing.LEASE
    assert item.declared_value == Decimal("500.00") and item.currency == "CNY"
    assert item.model_grade == 2 and item.confidence == Decimal("0.7")
    assert item.reasons == ["low_confidence"] and item.state == "in_review"
    # Once the lease expires the case is unassigned again.
    later = now + reviewing.LEASE + timedelta(seconds=1)
    assert middle in {i.claim_id for i in queue(services, later, status="unassigned")}
    item = next(i for i in queue(services, later) if i.claim_id == middle)
    assert item.lease_holder is None and item.lease_expires_at is None


def test_repeat_claims_are_watched_with_their_history(services: Services) -> None:
    customer = add_user(services, "customer")
    first = in_review(services, customer=customer, tracking="SAME-CUSTOMER-1")
    second = in_review(services, customer=customer, tracking="SAME-CUSTOMER-2")
    parcel = in_review(services, tracking="SHARED-PARCEL")
    other = in_review(services, tracking="SHARED-PARCEL")  # someone else, the same parcel
    alone = in_review(services, tracking="ALONE-1")
    items = {i.claim_id: i for i in queue(services, utcnow())}
    assert items[first].watch and items[first].prior_claims == 1  # live, though not when it entered
    assert load(services, first).watch is False and load(services, second).watch is True
    assert items[second].prior_claims == 1
    assert items[parcel].watch and items[other].watch and items[other].prior_claims == 1
    assert not items[alone].watch and items[alone].prior_claims == 0

    with services.sessions() as session:
        detail = reviewing.case_detail(session, second, utcnow(), services.deadlines, POLICY)
        assert [(h.id, h.same_customer, h.same_tracking_number) for h in detail.history] == [
            (first, True, False)
        ]
        detail = reviewing.case_detail(session, other, utcnow(), services.deadlines, POLICY)
        assert [(h.id, h.same_customer, h.same_tracking_number) for h in detail.history] == [
            (parcel, False, True)
        ]


# --------------------------------------------------------------------------------------------------
# Leases


def test_take_renew_and_expire(services: Services) -> None:
    now = utcnow()
    claim_id = in_review(services)
    a, b = add_user(services), add_user(services, "admin")
    assert take(services, claim_id, a, now) == now + reviewing.LEASE
    with pytest.raises(Conflict) as refused:
        take(services, claim_id, b, now + timedelta(minutes=5))
    assert refused.value.code == "case_taken"
    assert f"until {(now + reviewing.LEASE):%H:%M}" in refused.value.message
    # Taking it again renews the lease.
    assert take(services, claim_id, a, now + timedelta(minutes=10)) == now + timedelta(minutes=25)
    # An expired lease lets someone else take it.
    later = now + timedelta(minutes=26)
    assert take(services, claim_id, b, later) == later + reviewing.LEASE
    assert load(services, claim_id).lease_holder_id == b.id
    with services.sessions() as session:
        taken = session.scalars(
            select(AuditEvent).where(AuditEvent.claim_id == claim_id, AuditEvent.action == "case_taken")
        ).all()
    assert [(e.actor, e.detail["renewed"]) for e in taken] == [
        (f"adjuster:{a.id}", False),
        (f"adjuster:{a.id}", True),
        (f"adjuster:{b.id}", False),
    ]


def test_take_refuses_unknown_and_decided_claims(services: Services) -> None:
    adjuster = add_user(services)
    with pytest.raises(NotFound):
        take(services, "no-such-claim", adjuster, utcnow())
    claim_id = in_review(services)
    take(services, claim_id, adjuster, utcnow())
    decide(services, claim_id, adjuster, "deny", utcnow(), reason="no damage visible")
    with pytest.raises(Conflict) as refused:
        take(services, claim_id, adjuster, utcnow())
    assert refused.value.code == "not_in_review"


def _race(n: int, work) -> tuple[list, list[BaseException]]:
    barrier = threading.Barrier(n, timeout=20)
    results: list = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results.append(work(i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, errors


def test_racing_adjusters_never_both_hold_a_case(any_db: Services) -> None:
    services = any_db
    now = utcnow()
    adjusters = [add_user(services) for _ in range(4)]
    for _ in range(3):
        claim_id = in_review(services)
        results, errors = _race(4, lambda i, cid=claim_id: take(services, cid, adjusters[i], now))
        assert len(results) == 1, errors
        assert len(errors) == 3 and all(isinstance(e, Conflict) and e.code == "case_taken" for e in errors)
        holder = load(services, claim_id).lease_holder_id
        assert holder in {a.id for a in adjusters}


def test_a_decision_racing_a_takeover_is_all_or_nothing(any_db: Services, monkeypatch) -> None:
    """A's lease runs out while A's decision is being written, and B takes the case at that moment.
    SQLite: A read the claim before B's take, so A's versioned write fails (409) and B holds the case.
    PostgreSQL: A holds the row lock, so B's take waits, then finds the case decided (409)."""
    services = any_db
    now = utcnow()
    claim_id = in_review(services)
    a, b = add_user(services), add_user(services)
    take(services, claim_id, a, now)
    takeover: list[object] = []
    check_grades = reviewing._check_grades

    def take_over() -> None:
        try:
            takeover.append(take(services, claim_id, b, now + reviewing.LEASE + timedelta(seconds=1)))
        except Conflict as exc:
            takeover.append(exc)

    def grades_then_takeover(*args, **kwargs):
        thread = threading.Thread(target=take_over)
        thread.start()
        thread.join(1.0)  # done at once on SQLite; waiting for A's row lock on PostgreSQL
        monkeypatch.setattr(reviewing, "_check_grades", check_grades)
        return check_grades(*args, **kwargs)

    monkeypatch.setattr(reviewing, "_check_grades", grades_then_takeover)
    try:
        decided = decide(services, claim_id, a, "deny", now + timedelta(minutes=14), reason="x")
    except Conflict as exc:
        decided = exc
    for _ in range(100):
        if takeover:
            break
        threading.Event().wait(0.1)
    claim = load(services, claim_id)
    assert isinstance(decided, Conflict) == (services.engine.dialect.name == "sqlite")
    if isinstance(decided, Conflict):
        assert decided.code == "concurrent_update"
        assert isinstance(takeover[0], datetime)
        assert claim.state == "in_review" and claim.lease_holder_id == b.id
    else:
        assert isinstance(takeover[0], Conflict) and takeover[0].code == "not_in_review"
        assert claim.state == "denied" and claim.lease_holder_id is None
    with services.sessions() as session:
        decisions = session.scalars(select(ReviewDecision).where(ReviewDecision.claim_id == claim_id)).all()
    assert len(decisions) == (0 if isinstance(decided, Conflict) else 1)


def test_racing_decisions_record_one(any_db: Services) -> None:
    services = any_db
    now = utcnow()
    claim_id = in_review(services)
    a = add_user(services)
    take(services, claim_id, a, now)
    results, errors = _race(
        2, lambda i: decide(services, claim_id, a, "deny", now, reason=f"reason {i}").state
    )
    assert results == ["denied"], errors
    assert len(errors) == 1 and isinstance(errors[0], Conflict), errors
    with services.sessions() as session:
        assert (
            len(session.scalars(select(ReviewDecision).where(ReviewDecision.claim_id == claim_id)).all()) == 1
        )


def test_only_the_holder_decides(services: Services) -> None:
    now = utcnow()
    claim_id = in_review(services)
    a, b = add_user(services), add_user(services)
    with pytest.raises(Conflict) as refused:
        decide(services, claim_id, a, "deny", now, reason="x")
    assert refused.value.code == "lease_required"
    take(services, claim_id, a, now)
    with pytest.raises(Conflict) as refused:
        decide(services, claim_id, b, "deny", now, reason="x")
    assert refused.value.code == "case_taken"
    with pytest.raises(Conflict) as refused:  # A's own lease has run out
        decide(services, claim_id, a, "deny", now + reviewing.LEASE, reason="x")
    assert refused.value.code == "lease_required"
    assert load(services, claim_id).state == "in_review"


# --------------------------------------------------------------------------------------------------
# Decisions


@pytest.mark.parametrize(
    ("action", "kwargs", "state", "paid"),
    [
        ("approve", {}, "payout_instructed", Decimal("150.00")),  # grade 2 pays 50% of 300
        ("approve", {"amount": "150"}, "payout_instructed", Decimal("150.00")),
        (
            "adjust",
            {"amount": "99.50", "reason": "one item undamaged"},
            "payout_instructed",
            Decimal("99.50"),
        ),
        ("deny", {"reason": "the photos show no damage"}, "denied", None),
        ("request_photos", {"reason": "please photograph the label"}, "needs_photos", None),
    ],
)
def test_decisions_and_their_records(services: Services, action, kwargs, state, paid) -> None:
    now = utcnow()
    claim_id = in_review(services, photos=3)
    adjuster = add_user(services)
    take(services, claim_id, adjuster, now)
    photos = [p.id for p in sorted(load(services, claim_id).photos, key=lambda p: p.position)]
    grades = dict(zip(photos, [1, 2, 3], strict=True))
    claim = decide(services, claim_id, adjuster, action, now, grades=grades, **kwargs)

    claim = load(services, claim_id)
    assert claim.state == state
    assert claim.payout_amount == paid
    assert claim.lease_holder_id is None and claim.lease_expires_at is None
    assert claim.decided_by_id == adjuster.id and claim.decided_at == now
    kind = {"approve": "approved", "adjust": "approved", "deny": "denied", "request_photos": "needs_photos"}
    assert claim.decision["kind"] == kind[action]
    if paid is not None:
        assert claim.accepted_option == "cash"
        assert claim.decision["amount"] == str(paid) and claim.decision["currency"] == "CNY"
    else:
        assert claim.decision["reason"] == kwargs["reason"]
    if action == "request_photos":
        assert claim.decision_due_at is None  # the customer's turn

    with services.sessions() as session:
        record = session.scalars(select(ReviewDecision).where(ReviewDecision.claim_id == claim_id)).one()
        assert (record.action, record.adjuster_id, record.amount, record.currency) == (
            action,
            adjuster.id,
            paid,
            "CNY",
        )
        assert record.reason == kwargs.get("reason")
        assert (record.model_version, record.model_grade, record.model_probs) == (
            "tiny-0.0.1",
            2,
            [0.1, 0.1, 0.1, 0.7],
        )
        labels = session.scalars(select(PhotoLabel).where(PhotoLabel.decision_id == record.id)).all()
        assert {label.photo_id: label.grade for label in labels} == grades
        assert {label.adjuster_id for label in labels} == {adjuster.id}
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.claim_id == claim_id).order_by(AuditEvent.id)
        ).all()
    decided = next(e for e in events if e.action == "transition" and e.from_state == "in_review")
    assert decided.actor == f"adjuster:{adjuster.id}"
    assert decided.reason_codes == [f"adjuster_{action}"]
    assert decided.detail["grades"] == grades
    assert decided.detail["reason"] == kwargs.get("reason")
    assert decided.detail["amount"] == (None if paid is None else str(paid))
    if paid is not None:
        assert (events[-1].from_state, events[-1].to_state, events[-1].actor) == (
            "approved",
            "payout_instructed",
            "system",
        )


@pytest.mark.parametrize(
    ("action", "kwargs", "fields"),
    [
        ("approve", {"grades": {}}, ["grades"]),
        ("approve", {"grades": "partial"}, ["grades"]),
        ("approve", {"grades": "bad-grade"}, ["grades.{0}"]),
        ("approve", {"grades": "unknown-photo"}, ["grades.nope"]),
        ("approve", {"amount": "149.99"}, ["amount"]),
        ("adjust", {"reason": "r"}, ["amount"]),
        ("adjust", {"amount": "abc", "reason": "r"}, ["amount"]),
        ("adjust", {"amount": "-5", "reason": "r"}, ["amount"]),
        ("adjust", {"amount": "1,000", "reason": "r"}, ["amount"]),
        ("adjust", {"amount": "0", "reason": "r"}, ["amount"]),
        ("adjust", {"amount": "10.001", "reason": "r"}, ["amount"]),
        ("adjust", {"amount": "300.01", "reason": "r"}, ["amount"]),  # above the declared value
        ("adjust", {"amount": "100"}, ["reason"]),
        ("deny", {}, ["reason"]),
        ("deny", {"reason": "   "}, ["reason"]),
        ("deny", {"reason": "x", "amount": "10"}, ["amount"]),
        ("request_photos", {}, ["reason"]),
        ("deny", {"reason": "x" * (reviewing.MAX_REASON + 1)}, ["reason"]),
        ("pay_double", {}, ["action"]),
        ("adjust", {"grades": {}}, ["grades", "amount", "reason"]),  # every problem at once
    ],
)
def test_invalid_decisions_are_422_and_change_nothing(services: Services, action, kwargs, fields) -> None:
    now = utcnow()
    claim_id = in_review(services)
    adjuster = add_user(services)
    take(services, claim_id, adjuster, now)
    photos = [p.id for p in sorted(load(services, claim_id).photos, key=lambda p: p.position)]
    grades = kwargs.pop("grades", None)
    if grades == "partial":
        grades = {photos[0]: 2}
    elif grades == "bad-grade":
        grades = {photos[0]: 4, photos[1]: 2}
    elif grades == "unknown-photo":
        grades = {photos[0]: 2, photos[1]: 2, "nope": 1}
    elif grades is None:
        grades = dict.fromkeys(photos, 2)
    with pytest.raises(Unprocessable) as refused:
        decide(services, claim_id, adjuster, action, now, grades=grades, **kwargs)
    assert [d["field"] for d in refused.value.details] == [f.format(photos[0]) for f in fields]
    claim = load(services, claim_id)
    assert claim.state == "in_review" and claim.lease_holder_id == adjuster.id
    with services.sessions() as session:
        assert session.scalars(select(ReviewDecision)).all() == []


def test_approve_needs_a_paying_grade_and_the_coverage_limit_caps_adjust(services: Services) -> None:
    now = utcnow()
    adjuster = add_user(services)
    nothing = in_review(services, grade=1)  # grade 1 pays 0 under POLICY
    unassessed = in_review(services, grade=None, reasons=("model_unavailable",))
    for claim_id in (nothing, unassessed):
        take(services, claim_id, adjuster, now)
        with pytest.raises(Unprocessable) as refused:
            decide(services, claim_id, adjuster, "approve", now)
        assert "use adjust" in refused.value.message
        assert decide(services, claim_id, adjuster, "adjust", now, amount="20", reason="dented").state == (
            "payout_instructed"
        )
    big = in_review(services, declared="30000.00", grade=3)
    take(services, big, adjuster, now)
    with pytest.raises(Unprocessable) as refused:
        decide(services, big, adjuster, "adjust", now, amount="25000", reason="r")
    assert "coverage limit" in refused.value.message
    assert decide(services, big, adjuster, "approve", now).payout_amount == Decimal("20000.00")


# --------------------------------------------------------------------------------------------------
# Case detail and notes


def test_case_detail_and_notes(services: Services) -> None:
    now = utcnow()
    claim_id = in_review(services, declared="300.00")
    adjuster = add_user(services)
    with services.sessions() as session:
        note = reviewing.add_note(session, claim_id, adjuster, "  called the customer  ", now)
        session.commit()
        assert note.text == "called the customer"
    for bad in ("", "   ", "x" * (reviewing.MAX_NOTE + 1)):
        with services.sessions() as session, pytest.raises(Unprocessable):
            reviewing.add_note(session, claim_id, adjuster, bad, now)
    with services.sessions() as session, pytest.raises(NotFound):
        reviewing.add_note(session, "no-such-claim", adjuster, "hello", now)

    with services.sessions() as session:
        detail = reviewing.case_detail(session, claim_id, now, services.deadlines, POLICY)
        assert detail.claim.id == claim_id and detail.items is detail.item
        assert detail.items.claim_id == claim_id
        assert detail.proposed_amount == Decimal("150.00")
        assert detail.decision["kind"] == "review"
        assert [(n.text, n.author.name) for n in detail.notes] == [("called the customer", adjuster.name)]
        noted = [e for e in detail.timeline if e.action == "note"]
        assert [(e.actor, e.detail["text"]) for e in noted] == [
            (f"adjuster:{adjuster.id}", "called the customer")
        ]
        assert [p.position for p in detail.photos] == [1, 2]
        assert detail.photos[0].url == f"/v1/claims/{claim_id}/photos/{detail.photos[0].id}"
        assert detail.photos[0].heatmap_url is None and detail.photos[0].adjuster_grade is None
        assert session.scalars(select(CaseNote)).one().claim_id == claim_id
    with services.sessions() as session, pytest.raises(NotFound):
        reviewing.case_detail(session, "no-such-claim", now, services.deadlines, POLICY)

    take(services, claim_id, adjuster, now)
    photos = [p.id for p in sorted(load(services, claim_id).photos, key=lambda p: p.position)]
    decide(
        services,
        claim_id,
        adjuster,
        "request_photos",
        now,
        reason="more",
        grades={photos[0]: 0, photos[1]: 3},
    )
    with services.sessions() as session:
        detail = reviewing.case_detail(session, claim_id, now, services.deadlines, POLICY)
        assert [p.adjuster_grade for p in detail.photos] == [0, 3]
        assert detail.claim.state == "needs_photos"
