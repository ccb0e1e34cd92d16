"""End to end on real components: the API (in a TestClient) files claims over HTTP, photos go to
SeaweedFS (S3), claims to PostgreSQL, the task through Redis to a real Celery worker process.

Each test run uses its own PostgreSQL database (`postgres_url`), S3 bucket and Celery queue, and a
Redis database that the shared `redis_url` fixture does not flush (another test session starting
meanwhile flushes that one, which would drop our queued messages), so parallel runs do not interfere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from claims.lifecycle import ClaimState
from config.settings import Settings
from storage.tables import AuditEvent, Claim
from tests.conftest import TINY_MODEL_VERSION
from tests.factories import add_shipment, policy, policy_toml
from tests.workers.helpers import jpeg

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DECIDED = {ClaimState.OFFERED.value, ClaimState.IN_REVIEW.value}
DECISION_TIMEOUT_S = 60.0
WORKER_START_TIMEOUT_S = 60.0
# The Redis database for these tests: not `redis_url`'s (db 15), which every test session flushes.
PRIVATE_REDIS_DB = 14

# Pays every grade and trusts any confidence, so a claim below the ceiling is always offered.
OFFER_ALL_POLICY = policy_toml(policy(version="test-celery-offer-all"))


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]  # the same settings, as the worker's environment
    queue: str
    tmp: Path


@pytest.fixture
def stack(tmp_path: Path, tiny_onnx_model: Path, seaweedfs, postgres_url: str, redis_url: str) -> Stack:
    broker = re.sub(r"/\d+$", f"/{PRIVATE_REDIS_DB}", redis_url)
    queue = f"claimlane-test-{uuid.uuid4().hex[:12]}"
    policy = tmp_path / "policy.toml"
    policy.write_text(OFFER_ALL_POLICY)
    env = {
        "CLAIMLANE_DATA_DIR": str(tmp_path / "data"),
        "CLAIMLANE_DATABASE_URL": postgres_url,
        "CLAIMLANE_OBJECT_STORE": "s3",
        "CLAIMLANE_S3_ENDPOINT": seaweedfs.endpoint,
        "CLAIMLANE_S3_ACCESS_KEY": seaweedfs.access_key,
        "CLAIMLANE_S3_SECRET_KEY": seaweedfs.secret_key,
        "CLAIMLANE_S3_BUCKET": f"celery-{uuid.uuid4().hex[:16]}",
        "CLAIMLANE_TASK_RUNNER": "celery",
        "CLAIMLANE_BROKER_URL": broker,
        "CLAIMLANE_MODEL_PATH": str(tiny_onnx_model),
        "CLAIMLANE_POLICY_FILE": str(policy),
        "CLAIMLANE_CELERY_QUEUE": queue,
    }
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        object_store="s3",
        s3_endpoint=seaweedfs.endpoint,
        s3_access_key=seaweedfs.access_key,
        s3_secret_key=seaweedfs.secret_key,
        s3_bucket=env["CLAIMLANE_S3_BUCKET"],
        task_runner="celery",
        broker_url=broker,
        model_path=tiny_onnx_model,
        policy_file=policy,
    )
    yield Stack(settings=settings, env=env, queue=queue, tmp=tmp_path)
    import redis

    client = redis.Redis.from_url(broker)
    try:
        client.delete(queue, f"_kombu.binding.{queue}")
    finally:
        client.close()


@dataclass
class Worker:
    proc: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            if self.proc.poll() is not None:
                pytest.fail(f"celery worker exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.2)
        pytest.fail(f"no {pattern!r} in the worker log within {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


@contextmanager
def celery_worker(stack: Stack) -> Iterator[Worker]:
    """A real `celery worker` process on the stack's queue; stopped (TERM, then KILL) at exit."""
    log = stack.tmp / f"worker-{uuid.uuid4().hex[:6]}.log"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMLANE_")}
    env = {**inherited, **stack.env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    args = [
        sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
        "--pool=solo", "--concurrency=1", "--loglevel=INFO",
        "-Q", stack.queue, "-n", f"{stack.queue}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    worker = Worker(proc, log)
    try:
        worker.wait_for(r"\bready\.", WORKER_START_TIMEOUT_S)
        yield worker
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextmanager
def api_client(stack: Stack):
    """The API in a TestClient, publishing assessments to the stack's queue, and a customer key."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.security import create_user
    from workers.celery_app import create_celery
    from workers.dispatch import CeleryDispatcher

    celery = create_celery(stack.settings)
    app = create_app(stack.settings, dispatcher=CeleryDispatcher(app=celery, queue=stack.queue))
    try:
        with TestClient(app) as client:
            services = app.state.services
            with services.sessions() as session:
                _, key = create_user(session, f"customer-{uuid.uuid4().hex[:8]}", "customer")
                session.commit()
            client.headers["Authorization"] = f"Bearer {key}"
            yield client, services, celery
    finally:
        celery.close()


def file_claim(
    client, services, photos: list[bytes], declared_value: str = "100.00", request_id: str | None = None
) -> str:
    """A claim on a tracking number of its own, whose shipment the carrier's feed already sent."""
    tracking = f"SF{uuid.uuid4().hex[:10].upper()}"
    add_shipment(services, tracking, declared_value=declared_value)
    response = client.post(
        "/v1/claims",
        data={"tracking_number": tracking, "declared_value": declared_value, "currency": "CNY"},
        files=[("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)],
        headers={"Idempotency-Key": uuid.uuid4().hex, **({"X-Request-ID": request_id} if request_id else {})},
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "submitted"
    return response.json()["id"]


def wait_for_decision(client, claim_id: str, worker: Worker | None = None) -> dict:
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    while time.monotonic() < deadline:
        body = client.get(f"/v1/claims/{claim_id}").json()
        if body["status"] in DECIDED:
            return body
        time.sleep(0.2)
    tail = worker.tail() if worker else ""
    pytest.fail(f"claim {claim_id} still {body['status']} after {DECISION_TIMEOUT_S:.0f}s\n{tail}")


def audit_trail(services, claim_id: str) -> list[AuditEvent]:
    with services.sessions() as session:
        return list(
            session.scalars(select(AuditEvent).where(AuditEvent.claim_id == claim_id).order_by(AuditEvent.id))
        )


def test_upload_to_offer_through_celery_seaweedfs_and_postgres(stack: Stack) -> None:
    with api_client(stack) as (client, services, celery), celery_worker(stack) as worker:
        started = time.monotonic()
        request_id = f"celery-{uuid.uuid4().hex[:12]}"
        claim_id = file_claim(client, services, [jpeg(11), jpeg(12), jpeg(13)], request_id=request_id)
        body = wait_for_decision(client, claim_id, worker)
        latency = time.monotonic() - started
        print(f"\nupload-to-offer through Celery: {latency:.2f}s")
        # The worker logs JSON lines; the assessment's carries the upload's request id.
        worker.wait_for(
            rf'"message": "assessment of claim {claim_id}: assessed".*"request_id": "{request_id}"', 10
        )

        # The customer's view.
        assert body["status"] == "offered", body
        assert body["decision"]["kind"] == "offer"
        assert body["decision"]["currency"] == "CNY" and float(body["decision"]["amount"]) > 0
        assert [o["kind"] for o in body["decision"]["options"]] == ["cash", "reshipment", "store_credit"]
        assert body["claim_grade"] in range(4) and len(body["claim_probs"]) == 4
        assert all(p["grade"] is not None and len(p["grade_probs"]) == 4 for p in body["photos"])
        assert [(t["from_state"], t["to_state"]) for t in body["timeline"]] == [
            (None, "submitted"),
            ("submitted", "assessing"),
            ("assessing", "offered"),
        ]
        photo = client.get(body["photos"][0]["url"])
        assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"  # served from SeaweedFS

        # The audit trail in PostgreSQL.
        trail = audit_trail(services, claim_id)
        assert [(e.from_state, e.to_state) for e in trail] == [
            (None, "submitted"),
            ("submitted", "assessing"),
            ("assessing", "offered"),
        ]
        assert trail[0].actor.startswith("customer:")
        assert [e.actor for e in trail[1:]] == ["system", "system"]
        assert trail[-1].model_version == TINY_MODEL_VERSION
        assert trail[-1].policy_version == "test-celery-offer-all"
        assert len(trail[-1].detail["per_photo"]) == 3
        with services.sessions() as session:
            claim = session.get(Claim, claim_id)
            row_version, count = claim.row_version, claim.assessment_count
        assert count == 1

        # Running the task again (a duplicate delivery) changes nothing.
        result = celery.signature("claimlane.assess_claim", args=[claim_id]).apply_async(queue=stack.queue)
        worker.wait_for(rf"{result.id}\] succeeded in [0-9.e-]+s: 'already_done'", DECISION_TIMEOUT_S)
        assert [e.id for e in audit_trail(services, claim_id)] == [e.id for e in trail]
        with services.sessions() as session:
            claim = session.get(Claim, claim_id)
            assert (claim.row_version, claim.assessment_count) == (row_version, 1)
            assert claim.state == ClaimState.OFFERED


def test_a_task_queued_while_no_worker_runs_is_assessed_when_one_starts(stack: Stack) -> None:
    from workers.celery_app import app
    from workers.tasks import assess_claim_task

    # Acknowledged after running, re-queued if the worker dies, one message reserved at a time.
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert assess_claim_task.acks_late is True
    assert app.conf.broker_transport_options["visibility_timeout"] >= 600

    import redis

    broker = redis.Redis.from_url(stack.settings.broker_url.get_secret_value())
    try:
        with api_client(stack) as (client, services, _):
            claim_id = file_claim(client, services, [jpeg(21), jpeg(22), jpeg(23)], declared_value="5000.00")
            time.sleep(1.0)
            assert client.get(f"/v1/claims/{claim_id}").json()["status"] == "submitted"
            assert broker.llen(stack.queue) == 1  # the message waits in Redis

            with celery_worker(stack) as worker:
                body = wait_for_decision(client, claim_id, worker)
            assert body["status"] == "in_review"  # above the fast-lane ceiling: a person looks
            assert body["decision"]["reasons"] == ["value_above_fast_lane_ceiling"]
            assert [(e.from_state, e.to_state) for e in audit_trail(services, claim_id)][-1] == (
                "assessing",
                "in_review",
            )
            assert broker.llen(stack.queue) == 0
    finally:
        broker.close()
