"""Rate limits (api.ratelimit) and authorisation before the body is read (api.routing).

The other tests run with limits off (tests/conftest.py); these turn them on with small numbers.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.main import create_app
from api.security import set_disabled
from config.settings import Settings
from storage.tables import User, utcnow
from tests.api.conftest import NO_SUCH_ID, ApiHarness, MakeApi, assert_error


def _limited(make_api: MakeApi, **limits: str) -> ApiHarness:
    return make_api(rate_limits=True, **limits)


def test_a_key_over_its_limit_gets_429_with_retry_after(make_api: MakeApi) -> None:
    api = _limited(make_api, rate_limit_per_key="5/minute")
    customer, other = api.user("customer"), api.user("customer")
    for _ in range(5):
        assert api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=customer).status_code == 404
    r = api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=customer)
    error = assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert error["details"]["rule"] == "per_key"
    assert api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=other).status_code == 404  # counted per key


def test_uploads_have_their_own_stricter_limit_and_a_refused_one_stores_nothing(make_api: MakeApi) -> None:
    api = _limited(make_api, rate_limit_uploads="2/minute")
    customer = api.user("customer")
    assert [api.post_claim(customer).status_code for _ in range(2)] == [202, 202]
    api.drain()
    before = api.counts()
    r = api.post_claim(customer)
    assert_error(r, 429, "rate_limited")
    assert "Retry-After" in r.headers
    assert api.counts() == before
    assert (
        api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=customer).status_code == 404
    )  # reads still allowed


def test_an_address_that_fails_too_often_is_locked_out_even_with_a_good_key(make_api: MakeApi) -> None:
    api = _limited(make_api, rate_limit_auth_failures="3/minute")
    good = api.user("customer")
    bad = {"Authorization": "Bearer cl_00000000_" + "x" * 32}
    assert [api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=bad).status_code for _ in range(3)] == [
        401
    ] * 3
    r = api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=good)
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1


def test_limits_off_counts_nothing(make_api: MakeApi) -> None:
    api = make_api(rate_limits=False, rate_limit_per_key="1/minute")
    customer = api.user("customer")
    assert {api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=customer).status_code for _ in range(5)} == {
        404
    }


def test_the_key_and_role_are_checked_before_the_body_is_read(api: ApiHarness) -> None:
    customer = api.user("customer")
    # Malformed JSON to an admin route: a customer is told 403 (not 400 about the JSON).
    r = api.client.post(
        "/v1/admin/models/v1/promote",
        content=b'{"override_reason": ',
        headers={**customer, "Content-Type": "application/json"},
    )
    assert_error(r, 403)
    # No key: 401 before a multipart body is parsed (a broken body would otherwise be a 4xx about it).
    r = api.client.post(
        "/v1/claims",
        content=b"--x\r\nnot a multipart body",
        headers={"Content-Type": "multipart/form-data; boundary=x", "Idempotency-Key": "k"},
    )
    assert_error(r, 401)
    # An adjuster may not file claims: 403, whatever the body.
    adjuster = api.user("adjuster")
    r = api.client.post(
        "/v1/claims",
        content=b"--x\r\nnot a multipart body",
        headers={**adjuster, "Content-Type": "multipart/form-data; boundary=x", "Idempotency-Key": "k"},
    )
    assert_error(r, 403)


def test_a_disabled_key_fails_at_once(api: ApiHarness) -> None:
    customer = api.user("customer")
    assert api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=customer).status_code == 404
    with api.services.sessions() as session:
        user = session.get(User, int(customer["X-Test-User-Id"]))
        assert user is not None
        set_disabled(session, user.name, True, utcnow())
        session.commit()
    assert_error(api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=customer), 401)


def test_every_authorised_route_documents_401_and_429_and_roled_ones_403(api: ApiHarness) -> None:
    spec = api.client.get("/openapi.json").json()
    checked = 0
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            if not op.get("security") and "ApiKey" not in str(op):
                continue
            checked += 1
            assert {"401", "429"} <= set(op["responses"]), (method, path)
            if path.startswith("/v1/admin") or method == "post" and path == "/v1/claims":
                assert "403" in op["responses"], (method, path)
            assert "Retry-After" in op["responses"]["429"]["description"]
            if "requestBody" in op:
                assert "413" in op["responses"], (method, path)
    assert checked >= 15


def test_console_sign_ins_are_limited_per_address(make_api: MakeApi) -> None:
    api = _limited(make_api, rate_limit_logins="2/minute")
    key = api.user("adjuster")["Authorization"].removeprefix("Bearer ")
    client = TestClient(api.app, follow_redirects=False, headers={"Origin": "http://testserver"})
    assert [client.post("/console/login", data={"api_key": key}).status_code for _ in range(2)] == [303, 303]
    r = client.post("/console/login", data={"api_key": key})
    assert r.status_code == 429
    assert "Too many sign-in attempts" in r.text and int(r.headers["Retry-After"]) >= 1


def test_failed_console_sign_ins_lock_the_address_out(make_api: MakeApi) -> None:
    api = _limited(make_api, rate_limit_auth_failures="2/minute", rate_limit_logins="")
    client = TestClient(api.app, follow_redirects=False, headers={"Origin": "http://testserver"})
    wrong = "cl_00000000_" + "y" * 32
    assert [client.post("/console/login", data={"api_key": wrong}).status_code for _ in range(2)] == [
        401,
        401,
    ]
    key = api.user("adjuster")["Authorization"].removeprefix("Bearer ")
    assert client.post("/console/login", data={"api_key": key}).status_code == 429


@pytest.mark.parametrize("bad", ["lots", "5/fortnight", "-1/minute"])
def test_a_rate_that_cannot_be_read_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ValidationError, match="rate limit"):
        Settings(rate_limit_uploads=bad)


def test_the_app_builds_with_limits_on_by_default(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, rate_limits=True)
    assert create_app(settings).state.rate_limiter.rules.keys() == {
        "per_key",
        "uploads",
        "auth_failures",
        "logins",
    }
