"""The in-process dispatcher, the Celery task's retry policy (run eagerly) and the stale-claim sweeper."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from claims.lifecycle import ClaimState
from config.settings import Settings
from services.context import Services, build_services
from storage.objects import ObjectStoreUnavailable
from storage.tables import Claim, utcnow
from tests.workers.helpers import jpeg, load_claim, submit_claim
from workers.dispatch import CeleryDispatcher, Dispatcher, InProcessDispatcher, make_dispatcher


@pytest.fixture
def services(tmp_path: Path, tiny_onnx_model: Path):
    services = build_services(Settings(data_dir=tmp_path / "data", model_path=tiny_onnx_model))
    yield services
    services.close()


def test_make_dispatcher_follows_the_task_runner_setting(services: Services) -> None:
    inprocess = make_dispatcher(services)
    try:
        assert isinstance(inprocess, InProcessDispatcher) and isinstance(inprocess, Dispatcher)
    finally:
        inprocess.shutdown()
    services.settings = services.settings.model_copy(update={"task_runner": "celery"})
    celery = make_dispatcher(services)
    assert isinstance(celery, CeleryDispatcher) and isinstance(celery, Dispatcher)


def test_in_process_dispatcher_assesses_in_the_background(services: Services) -> None:
    dispatcher = InProcessDispatcher(services, max_workers=2)
    try:
        ids = [submit_claim(services, [jpeg(i), jpeg(i + 10)]) for i in range(3)]
        for claim_id in ids:
            dispatcher.enqueue_assessment(claim_id)
        dispatcher.enqueue_assessment(ids[0])  # a duplicate is harmless
        assert dispatcher.drain(timeout=60)
        for claim_id in ids:
            claim = load_claim(services, claim_id)
            assert claim.state in {ClaimState.OFFERED, ClaimState.IN_REVIEW}
            assert claim.assessment_count == 1
    finally:
        dispatcher.shutdown()
    with pytest.raises(RuntimeError):
        dispatcher.enqueue_assessment(ids[0])


def test_in_process_dispatcher_survives_a_failing_assessment(services: Services, monkeypatch, caplog) -> None:
    claim_id = submit_claim(services, [jpeg(1)])
    dispatcher = InProcessDispatcher(services)

    def down(key: str) -> bytes:
        raise ObjectStoreUnavailable("connection refused")

    monkeypatch.setattr(services.store, "get", down)
    try:
        dispatcher.enqueue_assessment(claim_id)
        assert dispatcher.drain(timeout=30)
        assert "assessment of claim" in caplog.text
        assert load_claim(services, claim_id).state == ClaimState.ASSESSING
        monkeypatch.undo()
        dispatcher.enqueue_assessment(claim_id)
        assert dispatcher.drain(timeout=30)
        assert load_claim(services, claim_id).state in {ClaimState.OFFERED, ClaimState.IN_REVIEW}
    finally:
        dispatcher.shutdown()


def test_celery_task_retries_transient_errors(services: Services, monkeypatch) -> None:
    from workers import tasks

    claim_id = submit_claim(services, [jpeg(1), jpeg(2)])
    monkeypatch.setattr(tasks, "get_services", lambda: services)
    real_get = services.store.get
    failures = {"left": 2}

    def flaky(key: str) -> bytes:
        if failures["left"]:
            failures["left"] -= 1
            raise ObjectStoreUnavailable("connection refused")
        return real_get(key)

    monkeypatch.setattr(services.store, "get", flaky)
    result = tasks.assess_claim_task.apply(args=[claim_id])  # eager: retries run at once
    assert result.get() == "assessed"
    assert failures["left"] == 0
    assert load_claim(services, claim_id).state in {ClaimState.OFFERED, ClaimState.IN_REVIEW}


def test_celery_task_does_not_retry_other_errors(services: Services, monkeypatch) -> None:
    from workers import tasks

    claim_id = submit_claim(services, [jpeg(1)])
    monkeypatch.setattr(tasks, "get_services", lambda: services)
    calls = []

    def bug(*args):
        calls.append(args)
        raise KeyError("a bug, not an outage")

    monkeypatch.setattr(tasks, "assess_claim", bug)
    result = tasks.assess_claim_task.apply(args=[claim_id])
    assert isinstance(result.result, KeyError)
    assert len(calls) == 1


def test_retry_countdown_grows_and_is_capped() -> None:
    from workers.tasks import MAX_RETRIES, RETRY_BACKOFF_MAX_S, retry_countdown

    assert 1 <= retry_countdown(0) <= 2
    assert 8 <= retry_countdown(3) <= 16
    assert all(retry_countdown(n) <= RETRY_BACKOFF_MAX_S for n in range(MAX_RETRIES + 5))
    assert sum(retry_countdown(n) for n in range(MAX_RETRIES)) > 10 * 60  # rides out a 10-minute outage


def test_requeue_stale_claims_picks_only_stuck_claims(services: Services) -> None:
    from workers.tasks import requeue_stale_claims

    old, assessing, fresh, decided = (submit_claim(services, [jpeg(i)]) for i in range(4))
    long_ago = utcnow() - timedelta(hours=1)
    with services.sessions() as session:
        for claim_id, state in ((old, "submitted"), (assessing, "assessing"), (decided, "offered")):
            claim = session.get(Claim, claim_id)
            claim.state, claim.state_changed_at = state, long_ago
        session.commit()

    enqueued: list[str] = []
    ids = requeue_stale_claims(services, timedelta(minutes=10), enqueue=enqueued.append)

    assert sorted(ids) == sorted([old, assessing]) == sorted(enqueued)
    assert fresh not in ids and decided not in ids


def test_a_claim_whose_worker_died_is_swept_within_a_minute(services: Services) -> None:
    """A worker killed mid-assessment leaves its claim in `assessing`; beat's sweep re-queues it once
    it has not moved for STALE_AFTER_S, and runs every SWEEP_EVERY_S: under a minute in all."""
    from workers.celery_app import STALE_AFTER_S, SWEEP_EVERY_S, app
    from workers.tasks import requeue_stale_claims

    assert STALE_AFTER_S + SWEEP_EVERY_S < 60
    schedule = app.conf.beat_schedule["requeue-stale-claims"]
    assert schedule["schedule"] == SWEEP_EVERY_S and schedule["kwargs"] == {
        "older_than_seconds": STALE_AFTER_S
    }
    stranded, running = (submit_claim(services, [jpeg(i)]) for i in (7, 8))
    with services.sessions() as session:
        for claim_id, ago in ((stranded, STALE_AFTER_S + 1), (running, 2)):
            claim = session.get(Claim, claim_id)
            claim.state, claim.state_changed_at = "assessing", utcnow() - timedelta(seconds=ago)
        session.commit()
    enqueued: list[str] = []
    requeue_stale_claims(services, timedelta(seconds=STALE_AFTER_S), enqueue=enqueued.append)
    assert enqueued == [stranded]
