"""Bad input gets a 4xx JSON error with a clear message, and leaves nothing behind: no claim row,
no photo row, no idempotency row, no object in the store. Failures of the store or the database
give 503 with Retry-After, again leaving nothing behind. No input ever causes a 500."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from storage.objects import ObjectStoreUnavailable
from storage.tables import Claim
from tests.api.conftest import (
    ApiHarness,
    MakeApi,
    assert_error,
    gif_bytes,
    jpeg_bytes,
    photo,
    png_bytes,
)
from tests.backends import free_ports

GOOD = photo(jpeg_bytes(1), "good.jpg")


def _bad_photo_cases(bad_files) -> dict[str, tuple[list, str]]:
    """name -> (photos, a word the message must contain)."""
    b = {name: path.read_bytes() for name, path in bad_files.bad.items()}
    return {
        "text named .jpg": ([photo(b["text.jpg"], "text.jpg")], "text.jpg"),
        "truncated jpeg": ([photo(b["truncated.jpg"], "truncated.jpg")], "truncated.jpg"),
        "decompression bomb png": ([photo(b["huge.png"], "huge.png", "image/png")], "huge.png"),
        "empty file": ([photo(b["empty.jpg"], "empty.jpg")], "empty.jpg"),
        "gif": ([photo(gif_bytes(), "anim.gif", "image/gif")], "anim.gif"),
        "too small": ([photo(png_bytes((32, 32)), "tiny.png", "image/png")], "tiny.png"),
        "a bad one among good ones": (
            [GOOD, photo(jpeg_bytes(2), "ok.jpg"), photo(b["text.jpg"], "third.jpg")],
            "photo 3",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "text named .jpg",
        "truncated jpeg",
        "decompression bomb png",
        "empty file",
        "gif",
        "too small",
        "a bad one among good ones",
    ],
)
def test_bad_photos_are_422_and_nothing_is_stored(api: ApiHarness, customer, bad_files, case: str) -> None:
    photos, word = _bad_photo_cases(bad_files)[case]
    error = assert_error(api.post_claim(customer, photos), 422, "validation_error")
    assert word in error["message"]
    assert any(d["field"].startswith("photos[") for d in error["details"])
    api.assert_nothing_stored()


@pytest.mark.parametrize(
    ("fields", "field", "word"),
    [
        ({"declared_value": "-5"}, "declared_value", "negative"),
        ({"declared_value": "abc"}, "declared_value", "abc"),
        ({"declared_value": "1e3"}, "declared_value", "1e3"),
        ({"declared_value": "1.234"}, "declared_value", "decimal places"),
        ({"declared_value": "0"}, "declared_value", "greater than zero"),
        ({"declared_value": "1,000"}, "declared_value", "1,000"),
        # An empty form field is a missing one: required while the shipment is not known.
        ({"declared_value": "", "shipment": False}, "declared_value", "required"),
        ({"currency": "XYZ"}, "currency", "XYZ"),
        ({"tracking_number": "ab"}, "tracking_number", "4 to 40"),
        ({"tracking_number": "SF 123 456!"}, "tracking_number", "letters, digits"),
        ({"tracking_number": "X" * 41}, "tracking_number", "4 to 40"),
        ({"description": "x" * 2001}, "description", "2000"),
        ({"description": "nul \x00 byte"}, "description", "control"),
    ],
)
def test_bad_fields_are_422_naming_the_field(
    api: ApiHarness, customer, fields, field: str, word: str
) -> None:
    error = assert_error(api.post_claim(customer, **fields), 422, "validation_error")
    assert field in error["message"] and word in error["message"], error
    assert [d["field"] for d in error["details"]] == [field]
    api.assert_nothing_stored()


@pytest.mark.parametrize("missing", ["tracking_number", "declared_value"])
def test_missing_fields_are_422(api: ApiHarness, customer, missing: str) -> None:
    # Without a shipment record the declared value is required; with one it is optional (below).
    error = assert_error(api.post_claim(customer, shipment=False, **{missing: None}), 422, "validation_error")
    assert missing in error["message"] and "required" in error["message"].lower()
    api.assert_nothing_stored()


def test_the_declared_value_is_optional_once_the_shipment_is_known(api: ApiHarness, customer) -> None:
    api.shipment("SF0000000042", declared_value="300.00")
    r = api.post_claim(customer, tracking_number="SF0000000042", declared_value=None)
    assert r.status_code == 202, r.text
    api.drain()
    view = api.client.get(r.json()["url"], headers=customer).json()
    assert view["declared_value"] == "300.00" and view["claimed_value"] is None


def test_no_photos_is_422(api: ApiHarness, customer) -> None:
    error = assert_error(api.post_claim(customer, []), 422, "validation_error")
    assert "photos" in error["message"]
    api.assert_nothing_stored()


def test_nine_photos_is_422(api: ApiHarness, customer) -> None:
    photos = [photo(jpeg_bytes(i), f"p{i}.jpg") for i in range(9)]
    error = assert_error(api.post_claim(customer, photos), 422, "validation_error")
    assert "1 to 8 photos, got 9" in error["message"]
    api.assert_nothing_stored()


def test_a_too_large_photo_is_413(make_api: MakeApi) -> None:
    api = make_api(max_photo_bytes=4096)
    customer = api.user()
    big = jpeg_bytes(3, size=(200, 200))
    assert len(big) > 4096
    error = assert_error(api.post_claim(customer, [GOOD, photo(big, "big.jpg")]), 413, "photo_too_large")
    assert "big.jpg" in error["message"] and "4096" in error["message"]
    api.assert_nothing_stored()


def test_a_body_larger_than_any_claim_is_refused_early(make_api: MakeApi) -> None:
    api = make_api(max_photos=1, max_photo_bytes=1024)
    customer = api.user()
    huge = b"\xff\xd8" + b"\0" * (2 * 1024 * 1024)
    error = assert_error(api.post_claim(customer, [photo(huge, "huge.jpg")]), 413, "payload_too_large")
    assert "limit" in error["message"]
    api.assert_nothing_stored()


def test_a_chunked_body_over_the_limit_is_refused(make_api: MakeApi) -> None:
    api = make_api(max_photos=1, max_photo_bytes=1024)
    customer = api.user()

    def body():
        yield b'--x\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 65536
        yield b"\r\n--x--\r\n"

    r = api.client.post(
        "/v1/claims",
        content=body(),
        headers={**customer, "Idempotency-Key": "k1", "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert "content-length" not in r.request.headers
    error = assert_error(r, 413, "payload_too_large")
    assert "over the limit" in error["message"]
    api.assert_nothing_stored()


def test_idempotency_key_is_required(api: ApiHarness, customer) -> None:
    error = assert_error(api.post_claim(customer, key=None), 400, "idempotency_key_missing")
    assert "Idempotency-Key" in error["message"]
    api.assert_nothing_stored()


@pytest.mark.parametrize("key", ["", "   ", "k" * 256, "tab\there"])
def test_malformed_idempotency_keys_are_400(api: ApiHarness, customer, key: str) -> None:
    r = api.post_claim(customer, key=key)
    assert r.status_code == 400, r.text
    api.assert_nothing_stored()


# --------------------------------------------------------------------------------------------------
# Failing dependencies: 503, nothing left behind


class FailingStore:
    """Wraps a store; `put` fails with ObjectStoreUnavailable from the `fail_on`-th call on."""

    def __init__(self, inner, fail_on: int) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.puts = 0

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.puts += 1
        if self.puts >= self.fail_on:
            raise ObjectStoreUnavailable("simulated: store went away")
        self.inner.put(key, data, content_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_store_failing_midway_is_503_and_discards_what_was_stored(make_api: MakeApi) -> None:
    api = make_api(store_wrapper=lambda inner: FailingStore(inner, fail_on=2))
    customer = api.user()
    r = api.post_claim(
        customer, [photo(jpeg_bytes(1), "a.jpg"), photo(jpeg_bytes(2), "b.jpg")], key="retry-me"
    )
    assert_error(r, 503, "service_unavailable")
    assert int(r.headers["retry-after"]) > 0
    # The first photo's original was written, then discarded (served copies are made on demand).
    assert api.services.store.puts == 2
    api.assert_nothing_stored()
    # The key was released: the retry goes through once the store is back.
    api.services.store.fail_on = 10**6
    r = api.post_claim(
        customer, [photo(jpeg_bytes(1), "a.jpg"), photo(jpeg_bytes(2), "b.jpg")], key="retry-me"
    )
    assert r.status_code == 202, r.text
    # The two originals (served copies are made when first asked for).
    assert api.counts() == {"claims": 1, "photos": 2, "idempotency_keys": 1, "objects": 2}


def test_s3_unreachable_is_503(make_api: MakeApi) -> None:
    (port,) = free_ports(1)  # nothing listens there
    api = make_api(object_store="s3", s3_endpoint=f"127.0.0.1:{port}", s3_access_key="k", s3_secret_key="s")
    customer = api.user()
    error = assert_error(api.post_claim(customer), 503, "service_unavailable")
    assert "photo store" in error["message"]
    with api.services.sessions() as session:
        assert session.query(Claim).count() == 0
    assert api.counts()["idempotency_keys"] == 0 and api.counts()["photos"] == 0


def test_database_failing_at_commit_is_503_and_discards_the_photos(api: ApiHarness, customer) -> None:
    def fail_on_claim_insert(session: Session, flush_context, instances) -> None:
        if any(isinstance(obj, Claim) for obj in session.new):
            raise OperationalError("INSERT INTO claims", {}, sqlite3.OperationalError("database is locked"))

    event.listen(Session, "before_flush", fail_on_claim_insert)
    try:
        r = api.post_claim(customer)
    finally:
        event.remove(Session, "before_flush", fail_on_claim_insert)
    assert_error(r, 503, "service_unavailable")
    assert "retry-after" in r.headers
    api.assert_nothing_stored()


def test_the_same_photo_in_another_claim_is_not_discarded(api: ApiHarness, customer) -> None:
    """Objects are content-addressed: a failed claim must not delete photos another claim uses."""
    assert api.post_claim(customer, [GOOD]).status_code == 202
    before = api.counts()

    def fail_on_claim_insert(session: Session, flush_context, instances) -> None:
        if any(isinstance(obj, Claim) for obj in session.new):
            raise OperationalError("INSERT INTO claims", {}, sqlite3.OperationalError("database is locked"))

    event.listen(Session, "before_flush", fail_on_claim_insert)
    try:
        r = api.post_claim(customer, [GOOD, photo(jpeg_bytes(9), "new.jpg")])
    finally:
        event.remove(Session, "before_flush", fail_on_claim_insert)
    assert r.status_code == 503
    assert api.counts() == before


# --------------------------------------------------------------------------------------------------
# Never a 500


def test_no_input_causes_a_500(api: ApiHarness, customer, bad_files) -> None:
    c = api.client
    claim = api.post_claim(customer).json()
    api.drain()
    requests: list[tuple[str, str, dict[str, Any]]] = []
    for photos, _ in _bad_photo_cases(bad_files).values():
        requests.append(("POST", "/v1/claims", {"files": [("photos", p) for p in photos]}))
    form = {"tracking_number": "SF1234", "declared_value": "10", "currency": "CNY"}
    weird_values = [
        "-5",
        "abc",
        "1e3",
        "1.234",
        "NaN",
        "Infinity",
        "9" * 70,
        "10\x00",
        "١٢٣",
        "0x10",
        "+5",
        " ",
        "1_000",
        "1e-3",
        "10.",
        ".5",
        "99999999999999999999",
    ]
    for value in weird_values:
        requests.append(
            ("POST", "/v1/claims", {"data": {**form, "declared_value": value}, "files": [("photos", GOOD)]})
        )
    for currency in ["XYZ", "cn", "CNYY", "\u00e9\u00e9\u00e9", "XAU", "1\x002"]:
        requests.append(
            ("POST", "/v1/claims", {"data": {**form, "currency": currency}, "files": [("photos", GOOD)]})
        )
    for tracking in ["", "\x00\x00\x00\x00", "ＳＦ１２３４", "' OR 1=1 --", "x" * 5000]:
        requests.append(
            (
                "POST",
                "/v1/claims",
                {"data": {**form, "tracking_number": tracking}, "files": [("photos", GOOD)]},
            )
        )
    requests += [
        ("POST", "/v1/claims", {"data": {**form, "photos": "not a file"}}),
        ("POST", "/v1/claims", {"json": {"tracking_number": "SF1234"}}),
        ("POST", "/v1/claims", {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data"}}),
        (
            "POST",
            "/v1/claims",
            {"content": b"--b\r\ngarbage", "headers": {"Content-Type": "multipart/form-data; boundary=b"}},
        ),
        (
            "POST",
            "/v1/claims",
            {"content": b"a=b", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        ),
        ("POST", "/v1/claims", {"data": form, "files": [("photos", ("", b"", "application/octet-stream"))]}),
        (
            "POST",
            "/v1/claims",
            {"data": form, "files": [("photos", ("../../etc/passwd\x00.jpg", b"x", "image/jpeg"))]},
        ),
        ("GET", "/v1/claims/" + "9" * 5000, {}),
        ("GET", "/v1/claims/%00", {}),
        ("GET", "/v1/claims/../../etc/passwd", {}),
        ("GET", f"/v1/claims/{claim['id']}/photos/..%2F..%2Fsecret", {}),
        ("GET", f"/v1/claims/{claim['id']}/photos/" + "x" * 3000, {}),
        ("POST", f"/v1/claims/{claim['id']}/accept", {"json": {"option": None}}),
        ("POST", f"/v1/claims/{claim['id']}/accept", {"json": ["cash"]}),
        ("POST", f"/v1/claims/{claim['id']}/accept", {"json": {"option": "cash", "extra": 1}}),
        (
            "POST",
            f"/v1/claims/{claim['id']}/accept",
            {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
        ),
        ("POST", f"/v1/claims/{claim['id']}/accept", {"content": b"option=cash"}),
        ("POST", "/v1/claims/unknown/decline", {}),
        ("DELETE", "/v1/claims", {}),
        ("PUT", f"/v1/claims/{claim['id']}", {}),
        ("GET", "/nowhere", {}),
    ]
    for method, url, kwargs in requests:
        headers = {
            **customer,
            "Idempotency-Key": "k-" + str(len(url)) + str(hash(str(kwargs)) % 10**9),
            **kwargs.pop("headers", {}),
        }
        r = c.request(method, url, headers=headers, **kwargs)
        assert 400 <= r.status_code < 500, (method, url, str(kwargs)[:300], r.status_code, r.text[:300])
        assert "error" in r.json(), r.text[:300]
    # Headers, too.
    for auth in ["Bearer", "Bearer \x7f", "Basic abc", "Bearer cl_zzzzzzzz_" + "a" * 32, "x" * 8000]:
        r = c.get(f"/v1/claims/{claim['id']}", headers={"Authorization": auth})
        assert r.status_code == 401, (auth, r.text)
    for key in [b"\x01", "é".encode(), b" " * 300]:
        r = c.post(
            "/v1/claims", data=form, files=[("photos", GOOD)], headers={**customer, "Idempotency-Key": key}
        )
        assert r.status_code == 400, (key, r.text)
    assert api.counts()["claims"] == 1


def test_malformed_json_is_a_422_naming_the_body(api: ApiHarness, customer) -> None:
    r = api.client.post(
        "/v1/claims/abc/accept",
        content=b'{"option": ',
        headers={**customer, "Content-Type": "application/json"},
    )
    error = assert_error(r, 422, "validation_error")
    assert error["details"][0]["field"] == "body"
    assert error["details"][0]["message"].startswith("the body is not valid JSON (at character")
