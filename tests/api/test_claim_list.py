"""GET /v1/claims: the customer's own claims, newest first, a page at a time, filtered by status."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from storage.tables import Claim
from tests.api.conftest import ApiHarness, MakeApi, assert_error


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, make_api: MakeApi) -> ApiHarness:
    if request.param == "postgresql":
        return make_api(database_url=request.getfixturevalue("fresh_postgres"))
    return make_api()


def _file(api: ApiHarness, customer: dict[str, str], n: int) -> list[str]:
    ids = []
    for _ in range(n):
        r = api.post_claim(customer)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    api.drain()
    return ids


def test_pages_through_the_customers_own_claims_newest_first(api: ApiHarness) -> None:
    customer, other = api.user(), api.user()
    mine = _file(api, customer, 5)
    _file(api, other, 2)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = api.client.get("/v1/claims", params=params, headers=customer)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(mine))  # newest first, each once, none of the other customer's
    first = api.client.get("/v1/claims", headers=customer).json()["items"][0]
    assert first["url"] == f"/v1/claims/{first['id']}" and first["status"] == "offered"
    assert first["offer_amount"] is not None and first["status_description"]


def test_a_claim_filed_meanwhile_does_not_shift_the_pages(api: ApiHarness) -> None:
    customer = api.user()
    mine = _file(api, customer, 3)
    page = api.client.get("/v1/claims", params={"limit": 2}, headers=customer).json()
    _file(api, customer, 1)  # newer than everything listed so far
    rest = api.client.get(
        "/v1/claims", params={"limit": 2, "cursor": page["next_cursor"]}, headers=customer
    ).json()
    assert [i["id"] for i in page["items"] + rest["items"]] == list(reversed(mine))


def test_filter_by_status(api: ApiHarness) -> None:
    customer = api.user()
    ids = _file(api, customer, 3)
    with api.services.sessions() as session:
        session.execute(update(Claim).where(Claim.id == ids[0]).values(state="in_review"))
        session.commit()
    r = api.client.get("/v1/claims", params={"status": "in_review"}, headers=customer)
    assert [i["id"] for i in r.json()["items"]] == [ids[0]]
    r = api.client.get(
        "/v1/claims", params=[("status", "in_review"), ("status", "offered")], headers=customer
    )
    assert len(r.json()["items"]) == 3
    assert api.client.get("/v1/claims", params={"status": "denied"}, headers=customer).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_bad_parameters_are_422_and_other_roles_403(api: ApiHarness) -> None:
    customer = api.user()
    for params in (
        {"limit": 0},
        {"limit": 101},
        {"status": "lost"},
        {"cursor": "not-a-cursor"},
        {"cursor": "x" * 300},
    ):
        assert_error(api.client.get("/v1/claims", params=params, headers=customer), 422)
    assert_error(api.client.get("/v1/claims", headers=api.user("adjuster")), 403)
    assert_error(api.client.get("/v1/claims"), 401)
