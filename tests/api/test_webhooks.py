"""Webhooks end to end, with a real receiving HTTP server on 127.0.0.1: every status change of a claim
arrives signed (Standard Webhooks), exactly once per change as the receiver accepts it, even though
the receiver refuses its first delivery and the service has to retry; the delivery log shows it;
admins can send a message again; bad registrations are 4xx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from services import webhooks
from storage.tables import AuditEvent
from tests.api.conftest import ApiHarness, MakeApi, assert_error


@dataclass
class Receiver:
    """A webhook receiver as an integration would write one: it checks the signature and the
    timestamp, refuses the first `fail_first` deliveries with 500, then accepts (204)."""

    secret: str = ""
    fail_first: int = 1
    received: list[tuple[str, dict]] = field(default_factory=list)  # every delivery, accepted or not
    accepted: list[tuple[str, dict]] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "0")
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest())
        signatures = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if "," in s]
        with self.lock:
            if (
                not any(hmac.compare_digest(s.encode(), expected) for s in signatures)
                or abs(time.time() - int(ts)) > 300
            ):
                self.bad_signatures += 1
                return 401
            event = json.loads(body)
            self.received.append((msg_id, event))
            if len(self.received) <= self.fail_first:
                return 500
            self.accepted.append((msg_id, event))
            return 204


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = state.handle({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks/claimlane"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, make_api: MakeApi) -> ApiHarness:
    # A fast deliverer and retry schedule (5 s -> 50 ms), so the retry happens within the test.
    backend = (
        {"database_url": request.getfixturevalue("fresh_postgres")} if request.param == "postgresql" else {}
    )
    return make_api(webhook_poll_s=0.05, webhook_retry_scale=0.01, **backend)


def _wait(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_every_status_change_arrives_once_after_a_refused_delivery(api: ApiHarness, receiver) -> None:
    state, url = receiver
    integration, admin, customer = api.user("integration"), api.user("admin"), api.user()
    r = api.client.post("/v1/webhooks", json={"url": url, "description": "app backend"}, headers=integration)
    assert r.status_code == 201, r.text
    state.secret = r.json()["secret"]
    assert state.secret.startswith("whsec_")
    assert "secret" not in api.client.get("/v1/webhooks", headers=integration).json()["items"][0]

    view = api.offered_claim(customer)
    assert api.accept(view["id"], customer).status_code == 200
    with api.services.sessions() as session:
        changes = [
            (e.id, e.from_state, e.to_state)
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.claim_id == view["id"], AuditEvent.action == "transition")
            )
        ]
    assert [c[2] for c in changes] == ["submitted", "assessing", "offered", "accepted", "payout_instructed"]
    _wait(lambda: len(state.accepted) >= len(changes))
    time.sleep(0.3)  # anything extra would arrive now

    assert state.bad_signatures == 0
    ids = [msg_id for msg_id, _ in state.accepted]
    assert len(ids) == len(set(ids)) == len(changes), "each change accepted exactly once"
    got = sorted(
        (e["data"]["sequence"], e["data"]["previous_status"], e["data"]["status"]) for _, e in state.accepted
    )
    assert got == sorted(changes)
    assert all(
        e["type"] == "claim.status_changed" and e["data"]["claim_id"] == view["id"] for _, e in state.accepted
    )
    # The refused first delivery was sent again under the same webhook-id.
    refused_id = state.received[0][0]
    assert [m for m, _ in state.received].count(refused_id) == 2 and refused_id in ids

    log = api.client.get(
        "/v1/admin/webhooks/messages", params={"claim_id": view["id"]}, headers=admin
    ).json()["items"]
    assert len(log) == len(changes) and {m["state"] for m in log} == {"delivered"}
    retried = next(m for m in log if m["id"] == refused_id)
    assert [a["status_code"] for a in retried["log"]] == [500, 204] and retried["attempts"] == 2

    # An admin sends one again: the receiver sees the same id once more (and can drop it).
    r = api.client.post(f"/v1/admin/webhooks/messages/{ids[-1]}/redeliver", headers=admin)
    assert r.status_code == 202 and r.json()["state"] == "pending"
    _wait(lambda: [m for m, _ in state.accepted].count(ids[-1]) == 2)


def test_a_change_that_rolls_back_is_never_announced(api: ApiHarness, receiver) -> None:
    state, url = receiver
    state.fail_first = 0
    integration, customer = api.user("integration"), api.user()
    state.secret = api.client.post("/v1/webhooks", json={"url": url}, headers=integration).json()["secret"]
    view = api.offered_claim(customer)
    _wait(lambda: len(state.accepted) == 3)
    # Declining an offer that is accepted already is refused (409): nothing is written, nothing sent.
    assert api.accept(view["id"], customer).status_code == 200
    assert_error(api.client.post(f"/v1/claims/{view['id']}/decline", headers=customer), 409)
    _wait(lambda: len(state.accepted) == 5)
    time.sleep(0.3)
    assert [e["data"]["status"] for _, e in state.accepted][-2:] == ["accepted", "payout_instructed"]
    assert len(state.accepted) == 5


def test_a_receiver_that_never_answers_well_ends_failed(make_api: MakeApi, receiver) -> None:
    api = make_api(webhook_poll_s=0.05, webhook_retry_scale=1e-5)  # the whole schedule in about 1 s
    state, url = receiver
    state.fail_first = 10**6
    integration, admin, customer = api.user("integration"), api.user("admin"), api.user()
    state.secret = api.client.post("/v1/webhooks", json={"url": url}, headers=integration).json()["secret"]
    r = api.post_claim(customer)
    assert r.status_code == 202
    api.drain()

    def all_failed() -> bool:
        log = api.client.get("/v1/admin/webhooks/messages", headers=admin).json()["items"]
        return len(log) == 3 and all(m["state"] == "failed" for m in log)

    _wait(all_failed, timeout=60)
    log = api.client.get("/v1/admin/webhooks/messages", params={"state": "failed"}, headers=admin).json()[
        "items"
    ]
    assert all(m["attempts"] == webhooks.MAX_ATTEMPTS and len(m["log"]) == webhooks.MAX_ATTEMPTS for m in log)
    assert all(m["last_error"] == "HTTP 500" for m in log)


def test_registration_refuses_bad_urls_and_other_roles(make_api: MakeApi) -> None:
    api = make_api(webhook_poll_s=0)
    integration = api.user("integration")
    for url in (
        "ftp://example.com/x",
        "example.com/hook",
        "http://user:pw@example.com/",
        "http://",
        "https://exa mple.com/",
    ):
        assert_error(api.client.post("/v1/webhooks", json={"url": url}, headers=integration), 422)
    assert_error(
        api.client.post("/v1/webhooks", json={"url": "https://e.com/" + "a" * 2000}, headers=integration), 422
    )
    assert_error(
        api.client.post("/v1/webhooks", json={"url": "https://e.com/", "extra": 1}, headers=integration), 422
    )
    for role in ("customer", "adjuster", "lead"):
        assert_error(
            api.client.post("/v1/webhooks", json={"url": "https://e.com/"}, headers=api.user(role)), 403
        )
    assert_error(api.client.get("/v1/admin/webhooks/messages", headers=integration), 403)
    created = api.client.post("/v1/webhooks", json={"url": "https://e.com/"}, headers=integration).json()
    other = api.user("integration")
    assert_error(api.client.delete(f"/v1/webhooks/{created['id']}", headers=other), 404)  # not theirs
    assert api.client.delete(f"/v1/webhooks/{created['id']}", headers=integration).status_code == 204
    assert api.client.delete(f"/v1/webhooks/{created['id']}", headers=integration).status_code == 204  # again
    assert api.client.get("/v1/webhooks", headers=integration).json()["items"] == []
    assert_error(api.client.delete("/v1/webhooks/not-a-uuid", headers=integration), 422)
    admin = api.user("admin")
    assert_error(
        api.client.post(
            "/v1/admin/webhooks/messages/00000000-0000-4000-8000-000000000000/redeliver", headers=admin
        ),
        404,
    )


def test_production_needs_https() -> None:
    with pytest.raises(Exception, match="https"):
        webhooks.check_url("http://example.com/hook", production=True)
    assert webhooks.check_url("https://example.com/hook", production=True) == "https://example.com/hook"


def test_signature_matches_the_standard_webhooks_example() -> None:
    """The example of the Standard Webhooks specification (its README's test vector)."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        webhooks.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_production_refuses_internal_addresses() -> None:
    for url in (
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://localhost/x",
    ):
        with pytest.raises(Exception, match="private, loopback or link-local"):
            webhooks.check_url(url, production=True)
    assert webhooks.check_url("https://203.0.113.9/x", production=False)  # development: anything


def test_the_deliverer_waits_out_a_database_outage_quietly(tmp_path, caplog) -> None:
    """A database that cannot be reached is said once (no traceback), then retried with backoff."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    engine = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    deliverer = webhooks.Deliverer(sessionmaker(bind=engine), poll_s=0.01).start()
    time.sleep(1.0)
    deliverer.close()
    lines = [r for r in caplog.records if r.name == "services.webhooks"]
    assert 1 <= len(lines) <= 2 and all(r.exc_info is None for r in lines), [r.getMessage() for r in lines]
    assert "database is unavailable" in lines[0].getMessage()


def test_disabling_an_endpoint_cancels_what_it_was_owed(make_api: MakeApi) -> None:
    api = make_api(webhook_poll_s=0)  # nothing is delivered: the messages wait
    integration, admin, customer = api.user("integration"), api.user("admin"), api.user()
    created = api.client.post(
        "/v1/webhooks", json={"url": "https://example.com/hook"}, headers=integration
    ).json()
    api.offered_claim(customer)
    pending = api.client.get("/v1/admin/webhooks/messages", params={"state": "pending"}, headers=admin).json()
    assert len(pending["items"]) == 3
    assert api.client.delete(f"/v1/webhooks/{created['id']}", headers=integration).status_code == 204
    log = api.client.get("/v1/admin/webhooks/messages", headers=admin).json()["items"]
    assert {m["state"] for m in log} == {"cancelled"} and all(m["log"] == [] for m in log)
    assert_error(api.client.post(f"/v1/admin/webhooks/messages/{log[0]['id']}/redeliver", headers=admin), 409)
