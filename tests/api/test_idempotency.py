"""`Idempotency-Key` on POST /v1/claims: a retry gets the first answer, and never a second claim."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from services.idempotency import _start_ticks, process_owner
from storage.tables import Claim, IdempotencyKey, utcnow
from tests.api.conftest import ApiHarness, assert_error, jpeg_bytes, photo


def _row(api: ApiHarness, key: str) -> IdempotencyKey:
    with api.services.sessions() as session:
        return session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == key)).one()


def _insert(
    api: ApiHarness, user_id: int, key: str, request_hash: str, age: timedelta, owner: str | None = None
) -> None:
    with api.services.sessions() as session:
        session.add(
            IdempotencyKey(
                user_id=user_id,
                key=key,
                request_hash=request_hash,
                state="in_flight",
                created_at=utcnow() - age,
                owner=owner,
            )
        )
        session.commit()


def _dead_process_owner() -> str:
    """The owner string of a process of this host that has exited (as an API killed mid-upload)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = f"{socket.gethostname()}:{proc.pid}:{_start_ticks(proc.pid)}"
    proc.wait()
    return owner


def test_a_retry_gets_the_same_answer_and_one_claim(api: ApiHarness, customer) -> None:
    photos = [photo(jpeg_bytes(1), "a.jpg"), photo(jpeg_bytes(2), "b.jpg")]
    first = api.post_claim(customer, photos, key="claim-1")
    assert first.status_code == 202, first.text
    api.drain()  # the claim moves on; the replay still answers what was answered first
    again = api.post_claim(customer, photos, key="claim-1")
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert api.counts()["claims"] == 1
    row = _row(api, "claim-1")
    assert row.state == "done" and row.claim_id == first.json()["id"] and row.status_code == 202


def test_the_key_is_per_user(api: ApiHarness, customer) -> None:
    other = api.user()
    assert api.post_claim(customer, key="same").status_code == 202
    r = api.post_claim(other, key="same")
    assert r.status_code == 202
    assert api.counts()["claims"] == 2


def test_same_key_different_request_is_422(api: ApiHarness, customer) -> None:
    assert api.post_claim(customer, key="k").status_code == 202
    for change in ({"tracking_number": "OTHER1234"}, {"declared_value": "100.01"}, {"description": "x"}):
        error = assert_error(api.post_claim(customer, key="k", **change), 422, "idempotency_key_reused")
        assert "different request" in error["message"]
    error = assert_error(
        api.post_claim(customer, [photo(jpeg_bytes(7))], key="k"), 422, "idempotency_key_reused"
    )
    assert api.counts()["claims"] == 1


def test_equivalent_requests_share_a_fingerprint(api: ApiHarness, customer) -> None:
    """Normalised fields: '100' and '100.00' CNY are the same amount; the photo's name does not matter."""
    first = api.post_claim(customer, [photo(jpeg_bytes(1), "a.jpg")], key="k", declared_value="100.00")
    again = api.post_claim(
        customer, [photo(jpeg_bytes(1), "renamed.jpg")], key="k", declared_value="100", currency="cny"
    )
    assert again.status_code == 202 and again.json() == first.json()


def test_a_request_in_flight_is_409(api: ApiHarness, customer) -> None:
    first = api.post_claim(customer, key="first")
    fingerprint = _row(api, "first").request_hash  # the key is not part of the fingerprint
    _insert(api, int(customer["X-Test-User-Id"]), "second", fingerprint, timedelta(seconds=10))
    error = assert_error(api.post_claim(customer, key="second"), 409, "request_in_progress")
    assert "still being processed" in error["message"]
    assert api.counts()["claims"] == 1
    assert first.status_code == 202
    # A different request under that key is still a misuse of the key.
    assert_error(
        api.post_claim(customer, key="second", tracking_number="ZZ9999"), 422, "idempotency_key_reused"
    )


def _close_claims(api: ApiHarness) -> None:
    """Close the claims filed so far (as an adjuster's denial would), so the same parcel may be claimed
    again: one open claim per customer and parcel."""
    with api.services.sessions() as session:
        for claim in session.scalars(select(Claim)):
            claim.state = "denied"
        session.commit()


def test_an_abandoned_request_is_taken_over(api: ApiHarness, customer) -> None:
    api.post_claim(customer, key="first")
    api.drain()
    _close_claims(api)
    fingerprint = _row(api, "first").request_hash
    _insert(api, int(customer["X-Test-User-Id"]), "second", fingerprint, timedelta(minutes=6))
    r = api.post_claim(customer, key="second")
    assert r.status_code == 202, r.text
    row = _row(api, "second")
    assert row.state == "done" and row.claim_id == r.json()["id"]
    assert api.counts()["claims"] == 2


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to know a process died")
def test_a_key_held_by_a_dead_process_is_taken_over_at_once(api: ApiHarness, customer) -> None:
    """The API was killed mid-upload 5 s ago: the app's retry succeeds now, not minutes later."""
    api.post_claim(customer, key="first")
    api.drain()
    _close_claims(api)
    fingerprint = _row(api, "first").request_hash
    _insert(
        api,
        int(customer["X-Test-User-Id"]),
        "second",
        fingerprint,
        timedelta(seconds=5),
        _dead_process_owner(),
    )
    r = api.post_claim(customer, key="second")
    assert r.status_code == 202, r.text
    row = _row(api, "second")
    assert row.state == "done" and row.owner == process_owner()


@pytest.mark.parametrize(
    ("owner", "age_s", "taken"),
    [
        ("this process", 5, False),  # alive: its request is still running
        ("elsewhere:123:456", 5, False),  # another host: unknown, so it must age out first
        ("elsewhere:123:456", 31, True),
        (None, 31, True),  # a row from before owners were recorded
    ],
)
def test_a_key_in_flight_elsewhere_waits_until_it_is_abandoned(
    api: ApiHarness, customer, owner: str | None, age_s: int, taken: bool
) -> None:
    api.post_claim(customer, key="first")
    api.drain()
    _close_claims(api)
    fingerprint = _row(api, "first").request_hash
    owner = process_owner() if owner == "this process" else owner
    _insert(api, int(customer["X-Test-User-Id"]), "second", fingerprint, timedelta(seconds=age_s), owner)
    r = api.post_claim(customer, key="second")
    if taken:
        assert r.status_code == 202, r.text
    else:
        assert_error(r, 409, "request_in_progress")
        assert r.headers["Retry-After"] == "2"


def test_a_failed_request_frees_its_key(api: ApiHarness, customer) -> None:
    assert api.post_claim(customer, key="k", declared_value="abc").status_code == 422
    api.assert_nothing_stored()
    r = api.post_claim(customer, key="k")
    assert r.status_code == 202
    assert api.counts()["claims"] == 1


def test_a_key_is_forgotten_after_its_ttl(api: ApiHarness, customer) -> None:
    first = api.post_claim(customer, key="old")
    with api.services.sessions() as session:
        row = session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == "old")).one()
        row.created_at = utcnow() - timedelta(hours=api.settings.idempotency_ttl_hours + 1)
        session.commit()
    api.drain()
    _close_claims(api)
    second = api.post_claim(customer, key="old")
    assert second.status_code == 202
    assert second.json()["id"] != first.json()["id"]
    assert api.counts()["claims"] == 2 and api.counts()["idempotency_keys"] == 1


def test_concurrent_retries_make_one_claim(api: ApiHarness, customer) -> None:
    photos = [photo(jpeg_bytes(1), "a.jpg"), photo(jpeg_bytes(2), "b.jpg")]
    barrier = threading.Barrier(4)
    responses = []

    def send() -> None:
        barrier.wait()
        responses.append(api.post_claim(customer, photos, key="racy"))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {202, 409} and 202 in statuses, statuses
    assert len({r.json()["id"] for r in responses if r.status_code == 202}) == 1
    assert api.counts()["claims"] == 1
