"""The authorisation matrix, generated from the routes: every route of the JSON API x every role (and
no key) x the caller's own or another customer's resource.

Each route declares who may call it through its dependencies (`api.routing` reads them); this test
derives the expected answer from the same declaration and checks the service keeps it:

- no key: 401; a role the route does not name: 403 (both before any body is read);
- a role it names: anything but 401/403, and never a 5xx (the request may still be invalid: the
  bodies here are empty on purpose);
- a customer on another customer's claim: 404, exactly as for a claim that does not exist.

A new route is covered the day it is added; a route with no authorisation at all fails the test.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from api.routers import admin, claims, payouts, review, shipments, webhooks
from api.routing import _gate
from tests.api.conftest import NO_SUCH_ID, ApiHarness, photo
from tests.factories import scene_photo

ROLES = ("customer", "adjuster", "admin", "integration", "lead")
ROUTES: list[APIRoute] = [
    r for m in (claims, shipments, review, admin, payouts, webhooks) for r in m.router.routes
]  # type: ignore[misc]


def _case(route: APIRoute) -> str:
    return f"{'/'.join(sorted(route.methods))} {route.path}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_model) -> Any:
    """One service with a claim of customer A (in review, one photo) and a shipment."""
    from contextlib import ExitStack

    from fastapi.testclient import TestClient

    from api.main import create_app
    from config.settings import Settings
    from services.context import build_services
    from tests.factories import REVIEW_ALL

    stack = ExitStack()
    settings = Settings(data_dir=tmp_path_factory.mktemp("authz"), model_path=tiny_onnx_model)
    services = build_services(settings)
    stack.callback(services.close)
    services.policy = REVIEW_ALL
    app = create_app(services=services)
    client = stack.enter_context(TestClient(app))
    api = ApiHarness(client=client, app=app, services=services, settings=settings)
    keys = {role: api.user(role) for role in ROLES}
    keys["other customer"] = api.user("customer")
    r = api.post_claim(keys["customer"])
    assert r.status_code == 202, r.text
    api.drain()
    claim = client.get(r.json()["url"], headers=keys["customer"]).json()
    values = {
        "claim_id": claim["id"],
        "photo_id": claim["photos"][0]["id"],
        "tracking_number": claim["tracking_number"],
        "version": "no-such-version",
        "payout_id": "999999",
        "endpoint_id": NO_SUCH_ID,
        "message_id": NO_SUCH_ID,
    }
    yield api, keys, values
    stack.close()


def _call(api: ApiHarness, route: APIRoute, headers: dict[str, str], values: dict[str, str], **body: Any):
    url = route.path_format.format(**{k: values[k] for k in route.param_convertors})
    method = sorted(route.methods)[0]
    return api.client.request(method, url, headers={**headers, "Idempotency-Key": "authz"}, **body)


def _valid_body(route: APIRoute) -> dict[str, Any]:
    """A body the customer routes accept, so the answer is about the claim, not the body."""
    if route.path.endswith("/accept"):
        return {"json": {"option": "cash"}}
    if route.path.endswith("/feedback"):
        return {"json": {"rating": 5}}
    if route.path.endswith("/photos"):
        return {"files": [("photos", photo(scene_photo(77)))]}
    return {}


def test_every_route_of_the_api_is_authorised() -> None:
    unguarded = [_case(r) for r in ROUTES if _gate(r.dependant) is None]
    assert not unguarded, f"routes with no authorisation: {unguarded}"
    assert len(ROUTES) >= 20


@pytest.mark.parametrize("route", ROUTES, ids=_case)
@pytest.mark.parametrize("who", [None, *ROLES])
def test_the_matrix(world, route: APIRoute, who: str | None) -> None:
    api, keys, values = world
    gate = _gate(route.dependant)
    assert gate is not None
    headers = {} if who is None else {k: v for k, v in keys[who].items() if k == "Authorization"}
    status = _call(api, route, headers, values).status_code
    if who is None:
        assert status == 401
    elif gate.roles and who not in gate.roles:
        assert status == 403, (who, gate.roles)
    else:
        assert status not in (401, 403) and status < 500, (who, status)


@pytest.mark.parametrize(
    "route",
    [
        r
        for r in ROUTES
        if "{claim_id}" in r.path and "customer" in (_gate(r.dependant).roles or ("customer",))
    ],
    ids=_case,  # type: ignore[union-attr]
)
def test_a_customer_never_reaches_another_customers_claim(world, route: APIRoute) -> None:
    """Another customer's claim answers exactly as a claim that does not exist (ids cannot be probed),
    with a valid body (404) and without one."""
    api, keys, values = world
    other = {"Authorization": keys["other customer"]["Authorization"]}
    missing = {**values, "claim_id": NO_SUCH_ID}
    for body in ({}, _valid_body(route)):
        theirs = _call(api, route, other, values, **body)
        nothing = _call(api, route, other, missing, **body)
        assert (theirs.status_code, theirs.json()) == (nothing.status_code, nothing.json()), _case(route)
    assert theirs.status_code == 404, (_case(route), theirs.status_code)
    own = _call(
        api, route, {"Authorization": keys["customer"]["Authorization"]}, values, **_valid_body(route)
    )
    assert own.status_code != 404 and own.status_code < 500, (_case(route), own.status_code)
