"""The admin API over the model registry: admins only; list, promote (gate, 409, override),
rollback, challenger, shadow report."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from models.registry import CHALLENGER, CHAMPION
from services import promotion
from storage.tables import ModelEvent
from tests.api.conftest import ApiHarness, MakeApi, assert_error
from tests.models.gate_models import GateModels, write_evalset


@pytest.fixture
def admin_api(make_api: MakeApi, gate_models: GateModels, tmp_path: Path) -> ApiHarness:
    """An app whose configured model is the good one; the registry has the fixed evaluation set,
    the good model as champion and the bad one as challenger."""
    api = make_api(model_path=gate_models.good / "model.onnx")
    registry = promotion.registry_for(api.services)
    registry.put_evalset(write_evalset(tmp_path / "evalset", per_grade=4))
    promotion.ensure_champion(api.services)
    promotion.register(api.services, gate_models.bad, actor="cli:test")
    return api


@pytest.mark.parametrize("role", ["customer", "adjuster"])
def test_admin_routes_are_for_admins_only(admin_api: ApiHarness, role: str) -> None:
    headers = admin_api.user(role)
    for method, url, body in [
        ("GET", "/v1/admin/models", None),
        ("GET", "/v1/admin/models/shadow-report", None),
        ("POST", "/v1/admin/models/bad-3/promote", {}),
        ("POST", "/v1/admin/models/rollback", {"reason": "x"}),
        ("POST", "/v1/admin/models/bad-3/challenger", {}),
    ]:
        r = admin_api.client.request(method, url, json=body, headers=headers)
        assert_error(r, 403, "forbidden")
    r = admin_api.client.get("/v1/admin/models")
    assert_error(r, 401, "unauthorized")
    assert promotion.registry_for(admin_api.services).alias(CHAMPION) == "good-1"


def test_list_shows_versions_aliases_and_metrics(admin_api: ApiHarness) -> None:
    r = admin_api.client.get("/v1/admin/models", headers=admin_api.user("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["aliases"] == {CHAMPION: "good-1", CHALLENGER: "bad-3"}
    assert [v["version"] for v in body["versions"]] == ["bad-3", "good-1"]  # newest first
    by_version = {v["version"]: v for v in body["versions"]}
    assert by_version["good-1"]["aliases"] == [CHAMPION]
    assert by_version["bad-3"]["aliases"] == [CHALLENGER]
    assert by_version["good-1"]["metrics"]["auroc"] == 0.97
    assert by_version["good-1"]["registered_by"] == "system"
    assert body["evalset"]["count"] == 20


def test_promote_refused_override_and_rollback(admin_api: ApiHarness) -> None:
    admin = admin_api.user("admin")
    admin_id = admin["X-Test-User-Id"]
    registry = promotion.registry_for(admin_api.services)

    r = admin_api.client.post("/v1/admin/models/bad-3/promote", json={}, headers=admin)
    error = assert_error(r, 409, "promotion_refused")
    failures = error["details"]["failures"]
    assert any(f.startswith("fixed: AUROC") for f in failures)
    assert error["details"]["gate"]["passed"] is False
    assert {row["set"] for row in error["details"]["gate"]["rows"]} == {"fixed", "reviewed"}
    assert registry.alias(CHAMPION) == "good-1"

    r = admin_api.client.post(
        "/v1/admin/models/bad-3/promote", json={"override_reason": "customer demo"}, headers=admin
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["promoted"] is True and body["action"] == "override"
    assert body["previous_version"] == "good-1" and body["gate"]["passed"] is False
    assert registry.alias(CHAMPION) == "bad-3"
    with admin_api.services.sessions() as session:
        event = session.scalars(select(ModelEvent).where(ModelEvent.action == "override")).one()
        assert event.reason == "customer demo" and event.actor == f"admin:{admin_id}"

    r = admin_api.client.post("/v1/admin/models/rollback", json={"reason": "wrong payouts"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"champion": "good-1", "previous_version": "bad-3"}
    assert registry.alias(CHAMPION) == "good-1"

    r = admin_api.client.post("/v1/admin/models/rollback", json={"reason": "again"}, headers=admin)
    assert_error(r, 409, "no_rollback_target")
    r = admin_api.client.post("/v1/admin/models/rollback", json={"reason": ""}, headers=admin)
    assert_error(r, 422, "validation_error")


def test_promote_a_good_challenger(admin_api: ApiHarness, gate_models: GateModels) -> None:
    admin = admin_api.user("admin")
    promotion.register(admin_api.services, gate_models.ok, actor="cli:test", as_challenger=False)
    r = admin_api.client.post("/v1/admin/models/ok-2/challenger", json={"reason": "try it"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"challenger": "ok-2", "previous_challenger": "bad-3"}

    r = admin_api.client.post("/v1/admin/models/ok-2/promote", headers=admin)  # no body at all
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["action"] == "promote" and body["gate"]["passed"] is True
    assert body["gate"]["failures"] == []
    statuses = {(row["set"], row["status"]) for row in body["gate"]["rows"]}
    assert ("fixed", "ok") in statuses and ("reviewed", "not enough samples") in statuses

    listed = admin_api.client.get("/v1/admin/models", headers=admin).json()
    assert listed["aliases"] == {CHAMPION: "ok-2", CHALLENGER: None}
    assert {v["version"]: v for v in listed["versions"]}["ok-2"]["last_gate"]["passed"] is True


def test_unknown_versions_and_conflicts(admin_api: ApiHarness) -> None:
    admin = admin_api.user("admin")
    r = admin_api.client.post("/v1/admin/models/nope-1/promote", json={}, headers=admin)
    assert_error(r, 404, "model_version_not_found")
    r = admin_api.client.post("/v1/admin/models/nope-1/challenger", json={}, headers=admin)
    assert_error(r, 404, "model_version_not_found")
    r = admin_api.client.post("/v1/admin/models/good-1/promote", json={}, headers=admin)
    assert_error(r, 409, "promotion_conflict")
    r = admin_api.client.post("/v1/admin/models/good-1/challenger", json={}, headers=admin)
    assert_error(r, 409, "promotion_conflict")


def test_shadow_report(admin_api: ApiHarness) -> None:
    r = admin_api.client.get("/v1/admin/models/shadow-report", headers=admin_api.user("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0


def test_openapi_documents_the_admin_api(admin_api: ApiHarness) -> None:
    spec = admin_api.client.get("/openapi.json").json()
    promote = spec["paths"]["/v1/admin/models/{version}/promote"]["post"]
    assert promote["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert "/v1/admin/models/rollback" in spec["paths"]
    assert "/v1/admin/models/shadow-report" in spec["paths"]
    assert "PromotionView" in spec["components"]["schemas"]
