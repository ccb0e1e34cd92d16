"""Hot reload of the served model from the model registry (`services.context.Services`).

A local object store holds the registry; the "bundled" model is a tiny ONNX model in a temporary
weights folder. Promoting another version (setting the champion alias) reaches the API and a worker
without a restart; a version that cannot be loaded never replaces the one serving, and /readyz stays
green throughout. Polling is every call (`model_poll_seconds=0`); the check and the load run in a
background thread, so the tests wait for the swap with `wait_until`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import shutil
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import models.inference as inference
from api.main import create_app
from api.security import create_user
from models.registry import BOOTSTRAP_REASON, CHAMPION
from services import context
from services.context import Services
from storage.objects import LocalObjectStore
from tests.factories import add_shipment
from tests.workers.conftest import V1, V2, V3
from tests.workers.helpers import events, jpeg, load_claim, submit_claim
from tests.workers.test_celery import stack as celery_stack  # noqa: F401  (a fixture, used below)
from workers.assessment import assess_claim

WAIT_S = 20.0


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"{what} not reached within {timeout:.0f}s")


def promote(services: Services, folder: Path | None, version: str) -> None:
    """Register `folder` (unless None: already registered) and make `version` the champion."""
    if folder is not None:
        services.registry.register(folder, actor="test")
    services.registry.set_alias(CHAMPION, version, actor="test", reason="test promotion")


def served(services: Services) -> str:
    return services.model().version


# --------------------------------------------------------------------------------------------------
# Bootstrap and the swap


def test_first_use_bootstraps_the_bundled_model_as_champion(registry_services) -> None:
    services = registry_services()
    assert services.uses_registry
    assert served(services) == V1
    assert services.registry.alias(CHAMPION) == V1
    [change] = services.registry.history(CHAMPION)
    assert (change.version, change.by, change.reason) == (V1, "system", BOOTSTRAP_REASON)
    assert services.model_versions() == {"champion": V1, "challenger": None}
    assert services.challenger_model() is None

    # Another process starting later finds the champion and registers nothing again.
    other = registry_services()
    assert served(other) == V1
    assert len(other.registry.history(CHAMPION)) == 1
    assert [v.version for v in other.registry.versions()] == [V1]


def test_model_path_or_file_source_bypasses_the_registry(registry_services, tiny_onnx_model: Path) -> None:
    fixed = registry_services(model_path=tiny_onnx_model)
    assert not fixed.uses_registry
    assert fixed.model() is inference.load_model(tiny_onnx_model)  # today's process cache
    assert fixed.challenger_model() is None
    bundled_file = registry_services(model_source="file")
    assert served(bundled_file) == V1
    store = LocalObjectStore(fixed.settings.resolved_local_store_dir())
    assert store.list("registry/") == []  # nothing bootstrapped


def test_a_promoted_champion_is_swapped_in_and_the_old_session_freed(
    registry_services, tiny_model_factory
) -> None:
    services = registry_services()
    old = services.model()
    assert old.version == V1
    old_ref = weakref.ref(old)

    promote(services, tiny_model_factory(V2, seed=1), V2)
    wait_until(lambda: served(services) == V2, what="the swap to V2")
    new = services.model()
    assert new is not old and new.version == V2
    assert old.predict_arrays(_batch()).shape == (1, 4)  # a caller holding the old one still grades

    # Registry loads bypass load_model's process cache: nothing of the registry's is cached there,
    # and the old session is freed once its last user lets go of it.
    cache_dir = services.settings.data_dir / "model-cache"
    assert not [p for p in inference._MODELS if cache_dir in p.parents]
    services.check_models_now()  # waits for the background check that swapped to finish
    del old
    gc.collect()
    assert old_ref() is None, "the replaced model is still referenced somewhere"


def test_the_hot_path_does_no_registry_io_between_polls(registry_services, tiny_model_factory) -> None:
    services = registry_services(model_poll_seconds=3600)
    assert served(services) == V1
    promote(services, tiny_model_factory(V2, seed=1), V2)
    calls = []
    alias = services.registry.alias
    services.registry.alias = lambda name: calls.append(name) or alias(name)  # type: ignore[method-assign]
    for _ in range(100):
        assert served(services) == V1
    assert calls == []  # not due yet: no GET at all
    services.check_models_now()  # an explicit check (what the poll does when due)
    assert served(services) == V2
    assert calls == ["champion"]


# --------------------------------------------------------------------------------------------------
# The API and a worker pick it up without a restart


def _batch():
    import numpy as np

    return np.zeros((1, 3, 224, 224), dtype=np.float32)


def _file_claim(client: TestClient, services: Services, headers: dict[str, str], seed: int) -> str:
    tracking = f"SF{uuid.uuid4().hex[:10].upper()}"
    add_shipment(services, tracking)
    r = client.post(
        "/v1/claims",
        data={"tracking_number": tracking, "declared_value": "100.00", "currency": "CNY"},
        files=[("photos", ("p.jpg", jpeg(seed), "image/jpeg"))],
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _assessed_version(services: Services, claim_id: str) -> str:
    claim = load_claim(services, claim_id)
    last = events(services, claim_id)[-1]
    assert last.to_state == "offered"
    assert claim.model_version == last.model_version
    assert {p.model_version for p in claim.photos} == {claim.model_version}
    return claim.model_version


def test_api_and_worker_pick_up_a_promoted_model_without_restart(
    registry_services, tiny_model_factory
) -> None:
    api_services = registry_services()
    worker = registry_services()  # a separate worker process's Services, same database and store
    app = create_app(services=api_services)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        assert served(api_services) == V1  # warmed (and bootstrapped) by the lifespan
        with api_services.sessions() as session:
            _, key = create_user(session, f"customer-{uuid.uuid4().hex[:6]}", "customer")
            session.commit()
        headers = {"Authorization": f"Bearer {key}"}

        before = _file_claim(client, api_services, headers, seed=1)
        assert app.state.dispatcher.drain(WAIT_S)
        assert _assessed_version(api_services, before) == V1
        claim_id = submit_claim(worker, [jpeg(2)])
        assert assess_claim(worker, claim_id) == "assessed"
        assert _assessed_version(worker, claim_id) == V1

        promote(api_services, tiny_model_factory(V2, seed=1), V2)
        # /readyz is green at every moment of the swap (each probe also triggers a check).
        statuses = []
        deadline = time.monotonic() + WAIT_S
        while served(api_services) != V2 and time.monotonic() < deadline:
            statuses.append(client.get("/readyz").status_code)
        statuses += [client.get("/readyz").status_code for _ in range(5)]
        assert served(api_services) == V2
        assert set(statuses) == {200}

        after = _file_claim(client, api_services, headers, seed=3)
        assert app.state.dispatcher.drain(WAIT_S)
        assert _assessed_version(api_services, after) == V2
        body = client.get(f"/v1/claims/{after}", headers=headers).json()
        assert body["status"] == "offered"

    # The worker: its next look at the model starts the check; claims after the swap get V2.
    wait_until(lambda: served(worker) == V2, what="the worker's swap to V2")
    claim_id = submit_claim(worker, [jpeg(4)])
    assert assess_claim(worker, claim_id) == "assessed"
    assert _assessed_version(worker, claim_id) == V2
    assert _assessed_version(worker, before) == V1  # what was graded by V1 stays V1


# --------------------------------------------------------------------------------------------------
# A broken version never replaces the serving one


def _corrupt_in_store(services: Services, version: str, *, keep_checksums: bool) -> None:
    """Damage the version's model.onnx in the object store. keep_checksums: also rewrite its
    SHA256SUMS and version.json to match, so the download verifies and only loading fails."""
    store = services.store
    base = f"registry/versions/{version}"
    garbage = b"this is not an ONNX graph" * 10
    store.put(f"{base}/model.onnx", garbage, "application/octet-stream")
    if keep_checksums:
        digest = hashlib.sha256(garbage).hexdigest()
        sums = f"{digest}  model.onnx\n".encode()
        store.put(f"{base}/SHA256SUMS", sums, "text/plain")
        info = json.loads(store.get(f"{base}/version.json"))
        info["files"]["model.onnx"] = {"sha256": digest, "size": len(garbage)}
        info["files"]["SHA256SUMS"] = {"sha256": hashlib.sha256(sums).hexdigest(), "size": len(sums)}
        store.put(f"{base}/version.json", json.dumps(info).encode(), "application/json")


@pytest.mark.parametrize("damage", ["checksum_mismatch", "unloadable_onnx"])
def test_a_broken_new_version_keeps_the_old_one_serving(
    registry_services, tiny_model_factory, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    services = registry_services()
    app = create_app(services=services)
    with TestClient(app) as client:
        assert served(services) == V1
        services.registry.register(tiny_model_factory(V3, seed=2), actor="test")
        _corrupt_in_store(services, V3, keep_checksums=damage == "unloadable_onnx")
        fetches: list[str] = []
        fetch = services.registry.fetch
        services.registry.fetch = lambda v: fetches.append(v) or fetch(v)  # type: ignore[method-assign]

        promote(services, None, V3)
        services.check_models_now()  # the failed attempt, synchronously
        assert fetches == [V3]
        assert "cannot load champion model tiny-reg-3" in caplog.text
        for _ in range(20):  # background checks too: still V1, and V3 is not fetched again
            assert client.get("/readyz").status_code == 200
            assert served(services) == V1
        services.check_models_now()
        assert fetches == [V3], "a failed version is retried only after FAILED_RETRY_S"

        # Claims are still graded, by the old model.
        claim_id = submit_claim(services, [jpeg(5)])
        assert assess_claim(services, claim_id) == "assessed"
        assert _assessed_version(services, claim_id) == V1

        # The alias moving on (a fixed version) is picked up at once.
        promote(services, tiny_model_factory(V2, seed=1), V2)
        wait_until(lambda: served(services) == V2, what="the swap to V2")
        assert client.get("/readyz").status_code == 200


def test_a_failed_version_is_retried_after_the_backoff(
    registry_services, tiny_model_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = registry_services()
    assert served(services) == V1
    services.registry.register(tiny_model_factory(V3, seed=2), actor="test")
    good = services.store.get(f"registry/versions/{V3}/model.onnx")
    _corrupt_in_store(services, V3, keep_checksums=False)
    promote(services, None, V3)
    services.check_models_now()
    assert served(services) == V1
    services.store.put(f"registry/versions/{V3}/model.onnx", good, "application/octet-stream")  # repaired
    services.check_models_now()
    assert served(services) == V1  # within the backoff
    monkeypatch.setattr(context, "FAILED_RETRY_S", 0.0)
    services._slots[CHAMPION].failed = (V3, 0.0)  # the backoff has passed
    services.check_models_now()
    assert served(services) == V3


def test_the_first_load_failing_raises_and_is_retried(registry_services, bundled: Path) -> None:
    shutil.rmtree(bundled / V1)  # no bundled model and an empty registry: nothing to serve
    services = registry_services()
    with pytest.raises(inference.ModelError):
        services.model()
    # An assessment meanwhile goes to a person (model_unavailable), never crashes.
    claim_id = submit_claim(services, [jpeg(6)])
    assert assess_claim(services, claim_id) == "assessed"
    assert load_claim(services, claim_id).decision["reasons"] == ["model_unavailable"]


# --------------------------------------------------------------------------------------------------
# A real Celery worker process (PostgreSQL, Redis, SeaweedFS: see tests/workers/test_celery.py)


@pytest.mark.slow
def test_a_celery_worker_picks_up_a_promoted_model(
    request: pytest.FixtureRequest, tiny_model_factory, bundled: Path
) -> None:
    from tests.workers.test_celery import api_client, celery_worker, file_claim, wait_for_decision

    # Both processes read the champion from the registry in SeaweedFS, polling on every use. The
    # API bootstraps it with V1 (the worker finds it there), then V2 is promoted.
    stack = request.getfixturevalue("celery_stack")
    stack.settings = stack.settings.model_copy(update={"model_path": None, "model_poll_seconds": 0.0})
    del stack.env["CLAIMLANE_MODEL_PATH"]
    stack.env.update({"CLAIMLANE_MODEL_SOURCE": "registry", "CLAIMLANE_MODEL_POLL_SECONDS": "0"})
    with api_client(stack) as (client, services, _), celery_worker(stack) as worker:
        assert services.model().version == V1
        first = wait_for_decision(client, file_claim(client, services, [jpeg(31)]), worker)
        assert first["status"] == "offered"
        assert load_claim(services, first["id"]).model_version == V1

        promote(services, tiny_model_factory(V2, seed=1), V2)
        # The worker notices at its next use of the model; a claim already being graded keeps V1.
        versions = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = wait_for_decision(client, file_claim(client, services, [jpeg(32 + len(versions))]), worker)
            versions.append(load_claim(services, body["id"]).model_version)
            if versions[-1] == V2:
                break
        assert versions[-1] == V2, (versions, worker.tail())
        assert set(versions) <= {V1, V2} and len(versions) <= 3
        assert "swapped without a restart" in worker.text()
