"""NUL characters never reach the database (PostgreSQL refuses them in text: a 500 there, and stored
as is on SQLite): every such request is a 422 with a clear message, on PostgreSQL and on SQLite."""

from __future__ import annotations

import pytest

from tests.api.conftest import MakeApi, assert_error, photo
from tests.factories import scene_photo


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, make_api: MakeApi):
    if request.param == "postgresql":
        return make_api(database_url=request.getfixturevalue("fresh_postgres"))
    return make_api()


def test_nul_in_urls_queries_and_bodies_is_a_422(api) -> None:
    customer, adjuster, admin = api.user(), api.user("adjuster"), api.user("admin")
    r = api.post_claim(customer, [photo(scene_photo(1))])
    assert r.status_code == 202, r.text
    api.drain()
    claim_id = r.json()["id"]
    for method, url, who, body in [
        ("GET", "/v1/claims/abc%00def", customer, None),
        ("POST", "/v1/claims/a%00b/accept", customer, {"option": "cash"}),
        ("GET", "/v1/review/abc%00", adjuster, None),
        ("GET", "/v1/review/queue?reason=low%00confidence", adjuster, None),
        ("GET", "/v1/admin/models/shadow-report?challenger_version=a%00b", admin, None),
        ("POST", f"/v1/review/{claim_id}/notes", adjuster, {"text": "a\x00b"}),
        ("POST", f"/v1/claims/{claim_id}/accept", customer, {"option": "ca\x00sh"}),
    ]:
        response = api.client.request(method, url, headers=who, json=body)
        error = assert_error(response, 422)
        assert "NUL" in error["message"] or "NUL" in str(error.get("details")), (url, error)
    # The claim, its id and the service are untouched.
    assert api.client.get(f"/v1/claims/{claim_id}", headers=customer).status_code == 200


def test_nul_in_a_claim_form_is_a_422(api) -> None:
    customer = api.user()
    r = api.post_claim(customer, [photo(scene_photo(2))], description="box\x00crushed")
    assert_error(r, 422, "validation_error")
    r = api.post_claim(customer, [photo(scene_photo(2))], tracking_number="SF12\x0034", shipment=False)
    assert_error(r, 422, "validation_error")
    api.assert_nothing_stored()


def test_json_answers_are_never_cached_nor_sniffed(api) -> None:
    customer = api.user()
    for response in (api.client.get("/v1/claims/nope", headers=customer), api.client.get("/healthz")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
