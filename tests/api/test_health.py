"""Liveness, readiness, the error shape of unknown routes, 500s with a request id, and OpenAPI."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.errors import install_error_handlers
from tests.api.conftest import ApiHarness, MakeApi, assert_error
from tests.backends import free_ports


def test_healthz(api: ApiHarness) -> None:
    r = api.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "alive"}


def test_readyz_when_everything_works(api: ApiHarness) -> None:
    r = api.client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "object_store", "model"}
    assert all(c["ok"] for c in body["checks"].values())


def test_readyz_when_the_store_is_down(make_api: MakeApi) -> None:
    (port,) = free_ports(1)
    api = make_api(object_store="s3", s3_endpoint=f"127.0.0.1:{port}", s3_access_key="k", s3_secret_key="s")
    r = api.client.get("/readyz")
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) > 0
    checks = r.json()["checks"]
    assert checks["object_store"]["ok"] is False and checks["object_store"]["detail"]
    assert checks["database"]["ok"] and checks["model"]["ok"]
    assert api.client.get("/healthz").status_code == 200


def test_readyz_when_the_model_is_missing(make_api: MakeApi, tmp_path) -> None:
    api = make_api(model_path=tmp_path / "no-such-model.onnx")
    r = api.client.get("/readyz")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["model"]["ok"] is False and "model" in checks["model"]["detail"].lower()


def test_unknown_routes_and_methods_have_the_error_shape(api: ApiHarness) -> None:
    error = assert_error(api.client.get("/v2/nothing"), 404, "not_found")
    assert "/v2/nothing" in error["message"]
    r = api.client.delete("/v1/claims")
    assert_error(r, 405, "method_not_allowed")
    assert "allow" in r.headers


def test_every_response_has_a_request_id(api: ApiHarness) -> None:
    assert len(api.client.get("/healthz").headers["x-request-id"]) >= 16
    assert (
        api.client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    )
    assert (
        api.client.get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"] != "bad id!"
    )


def test_a_bug_is_a_logged_500_with_a_request_id(caplog) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a genuine bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    error = assert_error(r, 500, "internal_error")
    request_id = error["details"]["request_id"]
    assert request_id in error["message"] and r.headers["x-request-id"] == request_id
    assert "a genuine bug" not in r.text
    assert any(request_id in rec.getMessage() for rec in caplog.records)


def test_openapi_documents_every_model(api: ApiHarness) -> None:
    spec = api.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in (
        "ClaimAccepted",
        "ClaimView",
        "PhotoView",
        "OfferView",
        "ReviewView",
        "OptionView",
        "TimelineEntry",
        "AcceptRequest",
        "ErrorResponse",
        "Liveness",
        "Readiness",
    ):
        assert name in schemas, name
    post = spec["paths"]["/v1/claims"]["post"]
    assert "202" in post["responses"] and "413" in post["responses"]
    for path in spec["paths"].values():
        for op in path.values():
            if "422" in op.get("responses", {}):
                ref = op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse")
    assert schemas["ClaimView"]["properties"]["declared_value"]["type"] == "string"
    assert api.client.get("/docs").status_code == 200


def test_the_cdn_backed_api_pages_are_off_outside_development(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from config.settings import Settings

    def status(settings: Settings) -> tuple[int, int, int]:
        app = create_app(settings)  # no lifespan: these pages need no services
        client = TestClient(app)
        return tuple(client.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json"))  # type: ignore[return-value]

    assert status(Settings(data_dir=tmp_path)) == (200, 200, 200)
    assert status(Settings(data_dir=tmp_path, api_docs=False)) == (404, 404, 200)
    production = Settings.model_construct(
        **{**Settings(data_dir=tmp_path).__dict__, "environment": "production"}
    )
    assert not production.serves_api_docs
