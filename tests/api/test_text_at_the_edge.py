"""Text at the edge: NUL characters never reach the database (PostgreSQL refuses them in text: a 500
there, and stored as is on SQLite), form text that is not UTF-8 is refused instead of being stored as
Latin-1, and ids in URLs are UUIDs: every such request is a 422 with a clear message, on PostgreSQL
and on SQLite."""

from __future__ import annotations

import uuid

import pytest

from tests.api.conftest import NO_SUCH_ID, MakeApi, assert_error, photo
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
    for response in (
        api.client.get(f"/v1/claims/{NO_SUCH_ID}", headers=customer),
        api.client.get("/healthz"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


def _raw_form(api, headers, fields: dict[str, bytes], photo_name: bytes = b"p.jpg"):
    """A claim whose form fields are sent as raw bytes (a client that does not encode UTF-8)."""
    boundary = "claimlane-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="'.encode()
        + photo_name
        + b'"\r\nContent-Type: image/jpeg\r\n\r\n'
        + scene_photo(3)
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return api.client.post(
        "/v1/claims",
        content=body,
        headers={
            **headers,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )


def test_text_that_is_not_utf8_is_a_422_not_mojibake(api) -> None:
    customer = api.user()
    r = _raw_form(
        api,
        customer,
        {"tracking_number": b"SF1234567", "declared_value": b"10", "description": b"box \xff\xfe crushed"},
    )
    error = assert_error(r, 422, "validation_error")
    assert error["details"] == [
        {
            "field": "description",
            "location": "body",
            "message": "must be valid UTF-8 text (it held bytes that are not)",
            "type": "value_error",
        }
    ]
    r = _raw_form(api, customer, {"tracking_number": b"SF12\xe934567", "declared_value": b"10"})
    assert_error(r, 422, "validation_error")
    api.assert_nothing_stored()
    # A file name that is not UTF-8 is only a name: the claim is filed, and nothing breaks on it.
    api.shipment("SF7654321", declared_value="10.00")
    r = _raw_form(api, customer, {"tracking_number": b"SF7654321"}, photo_name=b"IMG_\xff.jpg")
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/v1/claims/{id}", "customer"),
        ("GET", "/v1/claims/{id}/photos/{id}", "customer"),
        ("POST", "/v1/claims/{id}/accept", "customer"),
        ("POST", "/v1/claims/{id}/decline", "customer"),
        ("GET", "/v1/review/{id}", "adjuster"),
        ("POST", "/v1/review/{id}/take", "adjuster"),
    ],
)
def test_ids_in_urls_must_be_uuids(api, method: str, path: str, role: str) -> None:
    who = api.user(role)
    for bad in ("abc", "1 OR 1=1", "00000000-0000-4000-8000-00000000000Z", "x" * 300):
        url = path.replace("{id}", bad, 1).replace("{id}", NO_SUCH_ID)
        body = {"option": "cash"} if url.endswith("/accept") else None
        error = assert_error(api.client.request(method, url, headers=who, json=body), 422)
        assert error["details"][0]["location"] == "path", error
    url = path.replace("{id}", NO_SUCH_ID)
    body = {"option": "cash"} if url.endswith("/accept") else None
    assert api.client.request(method, url, headers=who, json=body).status_code == 404
