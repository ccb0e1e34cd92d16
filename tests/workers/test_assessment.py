"""`workers.assessment.assess_claim` on SQLite and a local object store, with the tiny ONNX model."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from claims.deadlines import review_deadlines
from claims.lifecycle import Actor, ClaimState
from claims.policy import PolicyConfig, ReasonCode
from config.settings import Settings
from services.context import Services, build_services
from storage.objects import ObjectStoreUnavailable
from storage.tables import Claim, Shipment, utcnow
from storage.transitions import apply_transition
from tests.conftest import TINY_MODEL_VERSION
from tests.factories import OFFER_ALL
from tests.workers.helpers import events, jpeg, load_claim, moves, submit_claim
from workers.assessment import assess_claim


def _services(tmp_path: Path, model_path: Path, policy: PolicyConfig | None = OFFER_ALL) -> Services:
    services = build_services(Settings(data_dir=tmp_path / "data", model_path=model_path))
    if policy is not None:
        services.policy = policy
    return services


@pytest.fixture
def services(tmp_path: Path, tiny_onnx_model: Path):
    services = _services(tmp_path, tiny_onnx_model)
    yield services
    services.close()


PHOTOS = [jpeg(1), jpeg(2), jpeg(3)]


def test_assess_once_makes_an_offer_with_a_full_audit_trail(services: Services) -> None:
    claim_id = submit_claim(services, PHOTOS, declared_value="100.00")
    before = utcnow()

    assert assess_claim(services, claim_id) == "assessed"

    claim = load_claim(services, claim_id)
    assert claim.state == ClaimState.OFFERED
    assert claim.assessment_count == 1
    assert claim.model_version == TINY_MODEL_VERSION
    assert claim.policy_version == OFFER_ALL.version
    assert claim.claim_grade in range(4)
    assert len(claim.claim_probs) == 4 and abs(sum(claim.claim_probs) - 1) < 1e-4
    assert isinstance(claim.confidence, Decimal)
    decision = claim.decision
    assert decision["confidence"] == str(max(claim.claim_probs))
    # The column is NUMERIC(18, 4) (storage.tables.Money); the decision record keeps all 6 digits.
    assert claim.confidence == Decimal(decision["confidence"])  # stored at the precision decided at
    assert decision["kind"] == "offer"
    assert decision["grade"] == claim.claim_grade
    assert decision["currency"] == "CNY"
    assert Decimal(decision["amount"]) > 0
    assert [o["kind"] for o in decision["options"]] == ["cash", "reshipment", "store_credit"]
    assert decision["options"][1]["amount"] is None
    assert decision["explanation"].startswith("Your parcel shows")
    assert before + timedelta(hours=OFFER_ALL.offer_valid_hours) <= claim.offer_expires_at
    assert claim.offer_expires_at <= utcnow() + timedelta(hours=OFFER_ALL.offer_valid_hours)
    assert before <= claim.decision_due_at <= utcnow()
    for photo in claim.photos:
        assert photo.model_version == TINY_MODEL_VERSION
        assert len(photo.grade_probs) == 4
        assert photo.grade == max(range(4), key=lambda g: photo.grade_probs[g])
    # The claim is its most damaged photo: P(grade >= 3) is the photos' maximum.
    assert claim.claim_probs[3] == pytest.approx(max(p.grade_probs[3] for p in claim.photos), abs=2e-6)

    trail = events(services, claim_id)
    assert [(e.from_state, e.to_state) for e in trail] == [
        (None, "submitted"),
        ("submitted", "assessing"),
        ("assessing", "offered"),
    ]
    assert all(e.actor == "system" for e in trail[1:])
    last = trail[-1]
    assert last.model_version == TINY_MODEL_VERSION
    assert last.policy_version == OFFER_ALL.version
    assert last.reason_codes == []
    assert last.detail["claim_probs"] == claim.claim_probs
    assert set(last.detail["per_photo"]) == {p.id for p in claim.photos}


def test_a_claim_the_policy_will_not_fast_lane_goes_to_review(services: Services) -> None:
    claim_id = submit_claim(services, PHOTOS, declared_value="5000.00")  # above the CNY ceiling

    assert assess_claim(services, claim_id) == "assessed"

    claim = load_claim(services, claim_id)
    assert claim.state == ClaimState.IN_REVIEW
    assert claim.decision["kind"] == "review"
    assert ReasonCode.VALUE_ABOVE_FAST_LANE_CEILING in claim.decision["reasons"]
    assert claim.decision["explanation"].startswith("An adjuster will review")
    assert claim.offer_expires_at is None
    # The service deadlines of claims.deadlines, counted from submission and from entering review.
    assert claim.entered_review_at == claim.state_changed_at
    expected = review_deadlines(
        submitted_at=claim.created_at,
        entered_review_at=claim.entered_review_at,
        declared_value=claim.declared_value,
        currency=claim.currency,
        cfg=services.deadlines,
    )
    assert (claim.first_response_due_at, claim.decision_due_at) == (
        expected.first_response_due,
        expected.decision_due,
    )
    last = events(services, claim_id)[-1]
    assert (last.from_state, last.to_state) == ("assessing", "in_review")
    assert "value_above_fast_lane_ceiling" in last.reason_codes
    assert last.model_version == TINY_MODEL_VERSION and last.policy_version == OFFER_ALL.version


def test_the_shipped_policy_decides_too(tmp_path: Path, tiny_onnx_model: Path) -> None:
    services = _services(tmp_path, tiny_onnx_model, policy=None)
    try:
        claim_id = submit_claim(services, PHOTOS)
        assert assess_claim(services, claim_id) == "assessed"
        claim = load_claim(services, claim_id)
        assert claim.state in {ClaimState.OFFERED, ClaimState.IN_REVIEW}
        assert claim.policy_version == services.policy.version
    finally:
        services.close()


def test_assessing_again_changes_nothing(services: Services) -> None:
    claim_id = submit_claim(services, PHOTOS)
    assert assess_claim(services, claim_id) == "assessed"
    first = load_claim(services, claim_id)
    trail = [(e.id, e.to_state) for e in events(services, claim_id)]

    assert assess_claim(services, claim_id) == "already_done"
    assert assess_claim(services, claim_id) == "already_done"

    again = load_claim(services, claim_id)
    assert [(e.id, e.to_state) for e in events(services, claim_id)] == trail
    assert again.assessment_count == 1
    assert again.row_version == first.row_version
    assert again.decision == first.decision


def test_unknown_claim(services: Services) -> None:
    assert assess_claim(services, "00000000-0000-0000-0000-000000000000") == "not_found"


def test_a_claim_left_in_assessing_is_completed_by_a_rerun(services: Services) -> None:
    claim_id = submit_claim(services, PHOTOS)
    # A worker moved it to assessing and died before recording anything.
    with services.sessions() as session:
        claim = session.get(Claim, claim_id)
        apply_transition(session, claim, ClaimState.ASSESSING, Actor.SYSTEM)
        session.commit()

    assert assess_claim(services, claim_id) == "assessed"

    assert load_claim(services, claim_id).state == ClaimState.OFFERED
    assert moves(services, claim_id) == [
        (None, "submitted"),
        ("submitted", "assessing"),
        ("assessing", "offered"),
    ]


def test_a_claim_needing_photos_is_reassessed(services: Services) -> None:
    claim_id = submit_claim(services, PHOTOS, declared_value="5000.00")
    assert assess_claim(services, claim_id) == "assessed"
    due = load_claim(services, claim_id).decision_due_at
    with services.sessions() as session:
        claim = session.get(Claim, claim_id)
        apply_transition(session, claim, ClaimState.NEEDS_PHOTOS, Actor.ADJUSTER, user_id=1)
        session.commit()

    assert assess_claim(services, claim_id) == "assessed"

    claim = load_claim(services, claim_id)
    assert claim.state == ClaimState.IN_REVIEW
    assert claim.assessment_count == 2
    assert claim.decision_due_at == due  # a review keeps the deadline it already has
    assert moves(services, claim_id)[-2:] == [("needs_photos", "assessing"), ("assessing", "in_review")]


@pytest.mark.parametrize("broken", ["missing", "corrupt"])
def test_a_model_that_cannot_load_sends_the_claim_to_review(
    tmp_path: Path, tiny_onnx_model: Path, broken: str
) -> None:
    model = tmp_path / "weights" / "broken-1" / "model.onnx"
    model.parent.mkdir(parents=True)
    if broken == "corrupt":
        model.write_bytes(b"this is not an ONNX graph")
    services = _services(tmp_path, model)
    try:
        claim_id = submit_claim(services, PHOTOS)
        assert assess_claim(services, claim_id) == "assessed"
        claim = load_claim(services, claim_id)
        assert claim.state == ClaimState.IN_REVIEW  # never denied
        assert claim.decision["kind"] == "review"
        assert claim.decision["reasons"] == [ReasonCode.MODEL_UNAVAILABLE]
        assert claim.decision["grade"] is None and claim.decision["confidence"] is None
        assert claim.claim_grade is None and claim.confidence is None and claim.model_version is None
        assert all(p.grade is None for p in claim.photos)
        last = events(services, claim_id)[-1]
        assert (last.to_state, last.reason_codes) == ("in_review", ["model_unavailable"])
        assert last.policy_version == OFFER_ALL.version
        assert last.detail["problems"]
        assert assess_claim(services, claim_id) == "already_done"
    finally:
        services.close()


@pytest.mark.parametrize("damage", ["undecodable", "missing"])
def test_a_photo_that_cannot_be_read_sends_the_claim_to_review(services: Services, damage: str) -> None:
    claim_id = submit_claim(services, PHOTOS)
    key = load_claim(services, claim_id).photos[1].original_key
    if damage == "undecodable":
        services.store.put(key, b"not a photo any more", "image/jpeg")
    else:
        services.store.delete(key)

    assert assess_claim(services, claim_id) == "assessed"

    claim = load_claim(services, claim_id)
    assert claim.state == ClaimState.IN_REVIEW
    assert claim.decision["reasons"] == ["model_unavailable"]
    assert claim.claim_grade is None


def test_object_store_down_propagates_and_writes_nothing(services: Services, monkeypatch) -> None:
    claim_id = submit_claim(services, PHOTOS)

    def down(key: str) -> bytes:
        raise ObjectStoreUnavailable("connection refused")

    monkeypatch.setattr(services.store, "get", down)
    with pytest.raises(ObjectStoreUnavailable):
        assess_claim(services, claim_id)

    claim = load_claim(services, claim_id)
    assert claim.state == ClaimState.ASSESSING  # claimed, nothing decided
    assert claim.decision is None and claim.claim_grade is None and claim.assessment_count == 0
    assert all(p.grade is None for p in claim.photos)
    assert moves(services, claim_id)[-1] == ("submitted", "assessing")

    monkeypatch.undo()  # the store is back: the retried task completes the claim
    assert assess_claim(services, claim_id) == "assessed"
    assert load_claim(services, claim_id).state == ClaimState.OFFERED
    assert [m for m in moves(services, claim_id) if m[1] == "assessing"] == [("submitted", "assessing")]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_services(request, tmp_path: Path, tiny_onnx_model: Path):
    """Services on SQLite (optimistic locking decides) and on PostgreSQL (FOR UPDATE decides)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    settings = Settings(data_dir=tmp_path / "data", database_url=url, model_path=tiny_onnx_model)
    services = build_services(settings)
    services.policy = OFFER_ALL
    yield services
    services.close()


def test_concurrent_workers_record_one_assessment(any_db_services: Services, monkeypatch) -> None:
    """Two workers pass the claiming step, grade at the same time, then race to record: one wins."""
    services = any_db_services
    claim_id = submit_claim(services, PHOTOS)
    model = services.model()
    barrier = threading.Barrier(2, timeout=20)

    class Together:
        version = model.version
        input_size = model.input_size
        fast_lane_thresholds = model.fast_lane_thresholds

        def assess(self, batch):
            out = model.assess(batch)
            barrier.wait()  # both have graded before either records
            return out

    monkeypatch.setattr(services, "model", lambda: Together())
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            outcomes.append(assess_claim(services, claim_id))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert not errors
    assert sorted(outcomes) == ["already_done", "assessed"]
    claim = load_claim(services, claim_id)
    assert claim.state == ClaimState.OFFERED and claim.assessment_count == 1
    assert moves(services, claim_id) == [
        (None, "submitted"),
        ("submitted", "assessing"),
        ("assessing", "offered"),
    ]


def test_a_decided_claim_is_left_alone(services: Services) -> None:
    claim_id = submit_claim(services, PHOTOS)
    assert assess_claim(services, claim_id) == "assessed"
    with services.sessions() as session:
        claim = session.get(Claim, claim_id)
        apply_transition(session, claim, ClaimState.ACCEPTED, Actor.CUSTOMER, user_id=claim.customer_id)
        session.commit()
    assert assess_claim(services, claim_id) == "already_done"
    assert load_claim(services, claim_id).state == ClaimState.ACCEPTED


def test_input_the_policy_refuses_goes_to_a_person_not_a_crash_loop(services: Services) -> None:
    claim_id = submit_claim(services, PHOTOS)
    with services.sessions() as session:  # old or corrupt data: a value CNY cannot hold (fen only)
        claim = session.get(Claim, claim_id)
        session.get(Shipment, claim.tracking_number).declared_value = Decimal("100.005")
        session.commit()

    assert assess_claim(services, claim_id) == "assessed"

    claim = load_claim(services, claim_id)
    assert claim.state == ClaimState.IN_REVIEW
    assert claim.decision["reasons"] == ["model_unavailable"]
    assert claim.model_version == TINY_MODEL_VERSION
    assert all(p.grade is not None for p in claim.photos)  # the adjuster still sees the grades
    assert "policy" in events(services, claim_id)[-1].detail["problems"][0]
