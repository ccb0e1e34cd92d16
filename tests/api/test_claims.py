"""Filing a claim, following it to a decision, accepting or declining the offer, serving photos."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select, update

from api.main import create_app
from api.routers.claims import preferred_wait
from claims.policy import PolicyConfig
from storage.tables import AuditEvent, Claim, utcnow
from tests.api.conftest import (
    NO_SUCH_ID,
    OFFER_ALL,
    ApiHarness,
    MakeApi,
    assert_error,
    jpeg_bytes,
    jpeg_with_gps,
    photo,
)


def _claim(api: ApiHarness, claim_id: str) -> Claim:
    with api.services.sessions() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        return claim


def test_happy_path_to_an_offer_with_a_timeline(api: ApiHarness, customer) -> None:
    r = api.post_claim(
        customer,
        [photo(jpeg_bytes(1), "a.jpg"), photo(jpeg_bytes(2), "b.jpg")],
        description="box crushed on one corner",
        declared_value="199.99",
        tracking_number="SF1234567890",
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "submitted"
    assert body["url"] == f"/v1/claims/{body['id']}"
    assert r.headers["location"] == body["url"]
    assert body["expected_decision_at"] is not None

    api.drain()
    r = api.client.get(body["url"], headers=customer)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["id"] == body["id"]
    assert view["status"] == "offered"
    assert view["status_description"].startswith("We have made you an offer")
    assert view["declared_value"] == "199.99" and view["currency"] == "CNY"
    assert view["tracking_number"] == "SF1234567890"
    assert view["description"] == "box crushed on one corner"
    assert [p["position"] for p in view["photos"]] == [1, 2]
    assert all(p["grade"] in (0, 1, 2, 3) and len(p["grade_probs"]) == 4 for p in view["photos"])
    assert view["claim_grade"] in (0, 1, 2, 3) and len(view["claim_probs"]) == 4
    assert isinstance(view["confidence"], str)
    decision = view["decision"]
    assert decision["kind"] == "offer"
    assert isinstance(decision["amount"], str) and Decimal(decision["amount"]) > 0
    assert {o["kind"] for o in decision["options"]} == {"cash", "reshipment", "store_credit"}
    assert all(o["amount"] is None or isinstance(o["amount"], str) for o in decision["options"])
    assert decision["expires_at"] and decision["explanation"]
    moves = [(t["from_state"], t["to_state"], t["actor"]) for t in view["timeline"]]
    assert moves == [
        (None, "submitted", "you"),
        ("submitted", "assessing", "ClaimLane"),
        ("assessing", "offered", "ClaimLane"),
    ]


def test_the_shipped_policy_decides_too(make_api: MakeApi) -> None:
    api = make_api(policy=None)  # the policy file from Settings
    customer = api.user()
    r = api.post_claim(customer)
    assert r.status_code == 202
    api.drain()
    view = api.client.get(r.json()["url"], headers=customer).json()
    assert view["status"] in ("offered", "in_review")
    assert view["decision"]["kind"] in ("offer", "review")
    if view["decision"]["kind"] == "review":
        assert view["decision"]["reasons"] and view["decision"]["explanation"]


def test_money_is_exact_and_currency_normalised(api: ApiHarness, customer) -> None:
    r = api.post_claim(customer, declared_value=" 0.30 ", currency="cny")
    assert r.status_code == 202, r.text
    view = api.client.get(r.json()["url"], headers=customer).json()
    assert view["declared_value"] == "0.30" and view["currency"] == "CNY"
    assert _claim(api, view["id"]).declared_value == Decimal("0.30")


def test_an_iphone_heic_photo_is_accepted_and_assessed(api: ApiHarness, customer) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15"
    pixels = np.random.default_rng(3).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="HEIF", quality=85, exif=exif.tobytes())
    r = api.post_claim(customer, [photo(buf.getvalue(), "IMG_0001.HEIC", "image/heic")])
    assert r.status_code == 202, r.text
    api.drain()
    view = api.client.get(r.json()["url"], headers=customer).json()
    assert view["status"] == "offered" and view["photos"][0]["grade"] is not None
    served = api.client.get(view["photos"][0]["url"], headers=customer)
    assert served.headers["content-type"] == "image/jpeg"
    assert not Image.open(io.BytesIO(served.content)).getexif()


def test_photos_are_served_without_exif_or_gps(api: ApiHarness, customer) -> None:
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the upload has GPS
    r = api.post_claim(customer, [photo(original, "gps.jpg")])
    view = api.client.get(r.json()["url"], headers=customer).json()
    r = api.client.get(view["photos"][0]["url"], headers=customer)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.content != original
    served = Image.open(io.BytesIO(r.content))
    assert served.format == "JPEG"
    exif = served.getexif()
    assert len(exif) == 0 and not exif.get_ifd(0x8825)
    assert "exif" not in served.info


def test_unknown_photo_is_404(api: ApiHarness, customer) -> None:
    r = api.post_claim(customer)
    url = r.json()["url"]
    assert_error(api.client.get(f"{url}/photos/{NO_SUCH_ID}", headers=customer), 404, "not_found")
    assert_error(api.client.get(f"{url}/photos/nope", headers=customer), 422)  # not even an id


def test_adjusters_see_any_claim_with_recorded_actors(api: ApiHarness, customer) -> None:
    view = api.offered_claim(customer)
    adjuster = api.user("adjuster")
    r = api.client.get(f"/v1/claims/{view['id']}", headers=adjuster)
    assert r.status_code == 200
    actors = [t["actor"] for t in r.json()["timeline"]]
    assert actors[0] == f"customer:{customer['X-Test-User-Id']}"
    assert actors[1:] == ["system", "system"]
    assert api.client.get(view["photos"][0]["url"], headers=adjuster).status_code == 200
    admin = api.user("admin")
    assert api.client.get(f"/v1/claims/{view['id']}", headers=admin).status_code == 200


# --------------------------------------------------------------------------------------------------
# Accept


@pytest.mark.parametrize("option", ["cash", "store_credit", "reshipment"])
def test_accept_instructs_the_payout(api: ApiHarness, customer, option: str) -> None:
    view = api.offered_claim(customer)
    offer = view["decision"]
    r = api.client.post(f"/v1/claims/{view['id']}/accept", json={"option": option}, headers=customer)
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["status"] == "payout_instructed"
    assert after["accepted_option"] == option
    expected = {
        "cash": offer["amount"],
        "reshipment": None,
        "store_credit": next(o["amount"] for o in offer["options"] if o["kind"] == "store_credit"),
    }
    assert after["payout_amount"] == expected[option]
    assert [(t["to_state"], t["actor"]) for t in after["timeline"][-2:]] == [
        ("accepted", "you"),
        ("payout_instructed", "ClaimLane"),
    ]
    claim = _claim(api, view["id"])
    assert claim.accepted_option == option
    assert claim.payout_amount == (None if expected[option] is None else Decimal(expected[option]))
    with api.services.sessions() as session:
        accepted = session.scalars(
            select(AuditEvent).where(AuditEvent.claim_id == view["id"], AuditEvent.to_state == "accepted")
        ).one()
        assert accepted.detail["option"] == option
        assert accepted.detail["payout_amount"] == expected[option]


def test_accept_is_idempotent_and_a_different_option_conflicts(api: ApiHarness, customer) -> None:
    view = api.offered_claim(customer)
    url = f"/v1/claims/{view['id']}/accept"
    first = api.client.post(url, json={"option": "cash"}, headers=customer)
    again = api.client.post(url, json={"option": "cash"}, headers=customer)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert_error(
        api.client.post(url, json={"option": "store_credit"}, headers=customer), 409, "offer_already_accepted"
    )
    assert_error(api.client.post(f"/v1/claims/{view['id']}/decline", headers=customer), 409)
    assert len(api.client.get(f"/v1/claims/{view['id']}", headers=customer).json()["timeline"]) == 5


def test_accepting_an_option_not_offered_is_422(make_api: MakeApi) -> None:
    policy = PolicyConfig(**{**OFFER_ALL.__dict__, "version": "cash-only", "options": ("cash",)})
    api = make_api(policy=policy)
    customer = api.user()
    view = api.offered_claim(customer)
    r = api.client.post(f"/v1/claims/{view['id']}/accept", json={"option": "reshipment"}, headers=customer)
    error = assert_error(r, 422, "option_not_offered")
    assert "reshipment" in error["message"]
    assert api.client.get(f"/v1/claims/{view['id']}", headers=customer).json()["status"] == "offered"


def test_accept_with_an_unknown_option_is_422(api: ApiHarness, customer) -> None:
    view = api.offered_claim(customer)
    url = f"/v1/claims/{view['id']}/accept"
    error = assert_error(
        api.client.post(url, json={"option": "bitcoin"}, headers=customer), 422, "validation_error"
    )
    assert "option" in error["message"]
    assert_error(api.client.post(url, json={}, headers=customer), 422, "validation_error")
    assert_error(
        api.client.post(url, content=b"{not json", headers={**customer, "Content-Type": "application/json"}),
        422,
    )


def test_accept_before_the_decision_is_409(api: ApiHarness, customer) -> None:
    r = api.post_claim(customer)
    api.drain()
    claim_id = r.json()["id"]
    with api.services.sessions() as session:  # a claim still waiting for its assessment
        session.add(
            Claim(
                customer_id=int(customer["X-Test-User-Id"]),
                tracking_number="X1234",
                declared_value=Decimal("5"),
                currency="CNY",
                state="submitted",
            )
        )
        session.commit()
        waiting = session.scalars(select(Claim.id).where(Claim.id != claim_id)).one()
    assert_error(
        api.client.post(f"/v1/claims/{waiting}/accept", json={"option": "cash"}, headers=customer),
        409,
        "illegal_transition",
    )


# --------------------------------------------------------------------------------------------------
# Waiting for the decision (long poll)


def _waiting_claim(api: ApiHarness, customer) -> str:
    """A claim left `submitted` (as if its assessment had not run yet)."""
    with api.services.sessions() as session:
        claim = Claim(
            customer_id=int(customer["X-Test-User-Id"]),
            tracking_number="W1234",
            declared_value=Decimal("5"),
            currency="CNY",
            state="submitted",
        )
        session.add(claim)
        session.commit()
        return claim.id


def test_get_with_wait_answers_with_the_decision(api: ApiHarness, customer) -> None:
    r = api.post_claim(customer)
    assert r.status_code == 202, r.text
    started = time.monotonic()
    view = api.client.get(r.json()["url"], params={"wait": 20}, headers=customer).json()
    assert view["status"] == "offered", view
    assert time.monotonic() - started < 10
    assert api.services.changes.waiting() == 0


def test_wait_on_a_claim_still_being_assessed_answers_after_wait_seconds(api: ApiHarness, customer) -> None:
    claim_id = _waiting_claim(api, customer)
    started = time.monotonic()
    r = api.client.get(f"/v1/claims/{claim_id}", params={"wait": 0.4}, headers=customer)
    elapsed = time.monotonic() - started
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    assert 0.4 <= elapsed < 5
    assert api.services.changes.waiting() == 0


def test_a_decision_made_by_another_process_ends_the_wait(api: ApiHarness, customer) -> None:
    """No wake-up reaches this process (a Celery worker or another web worker decided): the waiting
    request re-reads the claim and answers within a fraction of a second of the commit."""
    claim_id = _waiting_claim(api, customer)
    decided_at: list[float] = []

    def decide_elsewhere() -> None:
        time.sleep(0.3)
        with api.services.sessions() as session:
            session.execute(update(Claim).where(Claim.id == claim_id).values(state="in_review"))
            session.commit()
        decided_at.append(time.monotonic())

    other = threading.Thread(target=decide_elsewhere)
    other.start()
    view = api.client.get(f"/v1/claims/{claim_id}", params={"wait": 20}, headers=customer).json()
    answered = time.monotonic()
    other.join()
    assert view["status"] == "in_review"
    assert answered - decided_at[0] < 2


def test_a_decided_claim_is_answered_at_once_whatever_the_wait(api: ApiHarness, customer) -> None:
    view = api.offered_claim(customer)
    started = time.monotonic()
    again = api.client.get(f"/v1/claims/{view['id']}", params={"wait": 20}, headers=customer).json()
    assert again["status"] == "offered" and time.monotonic() - started < 2


@pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan"])
def test_a_bad_wait_is_422(api: ApiHarness, customer, wait: str) -> None:
    claim_id = _waiting_claim(api, customer)
    assert_error(api.client.get(f"/v1/claims/{claim_id}", params={"wait": wait}, headers=customer), 422)


def test_waiting_on_someone_elses_claim_is_404_at_once(api: ApiHarness, customer) -> None:
    claim_id = _waiting_claim(api, customer)
    started = time.monotonic()
    other = api.user("customer")
    assert_error(api.client.get(f"/v1/claims/{claim_id}", params={"wait": 20}, headers=other), 404)
    assert time.monotonic() - started < 2


# --------------------------------------------------------------------------------------------------
# Prefer: wait on the upload: the decision in the upload's answer


def test_an_upload_with_prefer_wait_answers_with_the_decision(api: ApiHarness, customer) -> None:
    r = api.post_claim({**customer, "Prefer": "wait=20"})
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["status"] == "offered" and view["decision"]["kind"] == "offer", view
    assert r.headers["Location"] == f"/v1/claims/{view['id']}"
    assert r.headers["Preference-Applied"] == "wait=20"
    assert api.client.get(r.headers["Location"], headers=customer).json() == view
    assert api.services.changes.waiting() == 0


def test_a_replayed_upload_is_answered_at_once_without_waiting(api: ApiHarness, customer) -> None:
    headers = {**customer, "Prefer": "wait=20"}
    first = api.post_claim(headers, key="same-key")
    again = api.post_claim(headers, key="same-key")
    assert first.status_code == 201, first.text
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert "Preference-Applied" not in again.headers


class _HeldDispatcher:
    """Takes the claims and never assesses them (a queue that is slow today)."""

    def __init__(self) -> None:
        self.claims: list[str] = []

    def enqueue_assessment(self, claim_id: str) -> None:
        self.claims.append(claim_id)

    def shutdown(self) -> None:
        pass


def test_an_upload_not_decided_within_its_wait_is_answered_202_then(api: ApiHarness, customer) -> None:
    held = _HeldDispatcher()
    with TestClient(create_app(services=api.services, dispatcher=held)) as client:
        slow = ApiHarness(client=client, app=client.app, services=api.services, settings=api.settings)
        started = time.monotonic()
        r = slow.post_claim({**customer, "Prefer": "wait=0.4"})
        elapsed = time.monotonic() - started
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "submitted" and held.claims == [r.json()["id"]]
    assert r.headers["Preference-Applied"] == "wait=0.4"
    assert 0.4 <= elapsed < 5
    assert api.services.changes.waiting() == 0


@pytest.mark.parametrize("prefer", ["respond-async", "wait=soon", "wait=0", "wait=-3", "wait=nan", ""])
def test_preferences_other_than_a_positive_wait_are_ignored(api: ApiHarness, customer, prefer: str) -> None:
    r = api.post_claim({**customer, "Prefer": prefer})
    assert r.status_code == 202, r.text
    assert "Preference-Applied" not in r.headers


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        ("wait=10", 10.0),
        ("respond-async, wait=2.5", 2.5),
        ('Wait = "5"', 5.0),
        ("wait=600", 30.0),
        (None, None),
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_writes_it(prefer: str | None, seconds: float | None) -> None:
    assert preferred_wait(prefer) == seconds


# --------------------------------------------------------------------------------------------------
# Decline


def test_decline_goes_to_review_and_is_idempotent(api: ApiHarness, customer) -> None:
    view = api.offered_claim(customer)
    url = f"/v1/claims/{view['id']}/decline"
    first = api.client.post(url, headers=customer)
    assert first.status_code == 200, first.text
    after = first.json()
    assert after["status"] == "in_review"
    assert [(t["to_state"], t["actor"], t["reasons"]) for t in after["timeline"][-2:]] == [
        ("declined", "you", []),
        ("in_review", "ClaimLane", ["customer_declined"]),
    ]
    again = api.client.post(url, headers=customer)
    assert again.status_code == 200
    assert again.json() == after
    error = assert_error(
        api.client.post(f"/v1/claims/{view['id']}/accept", json={"option": "cash"}, headers=customer),
        409,
        "illegal_transition",
    )
    assert "in_review" in error["message"]


def test_an_offer_past_its_expiry_expires_on_read(api: ApiHarness, customer) -> None:
    view = api.offered_claim(customer)
    with api.services.sessions() as session:
        claim = session.get(Claim, view["id"])
        claim.offer_expires_at = utcnow() - timedelta(minutes=1)
        session.commit()
    r = api.client.get(f"/v1/claims/{view['id']}", headers=customer)
    assert r.status_code == 200
    assert r.json()["status"] == "expired"
    assert r.json()["timeline"][-1]["actor"] == "ClaimLane"
    # Accepting a lapsed offer is refused; declining it asks for a review instead.
    assert_error(
        api.client.post(f"/v1/claims/{view['id']}/accept", json={"option": "cash"}, headers=customer),
        409,
        "offer_expired",
    )
    r = api.client.post(f"/v1/claims/{view['id']}/decline", headers=customer)
    assert r.status_code == 200
    assert r.json()["status"] == "in_review"
    assert r.json()["timeline"][-1]["actor"] == "you"


def test_accepting_a_lapsed_offer_expires_it(api: ApiHarness, customer) -> None:
    view = api.offered_claim(customer)
    with api.services.sessions() as session:
        session.get(Claim, view["id"]).offer_expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert_error(
        api.client.post(f"/v1/claims/{view['id']}/accept", json={"option": "cash"}, headers=customer),
        409,
        "offer_expired",
    )
    assert _claim(api, view["id"]).state == "expired"


def test_customers_cannot_act_on_others_claims(api: ApiHarness, customer) -> None:
    view = api.offered_claim(customer)
    other = api.user("customer")
    for path in ("accept", "decline"):
        kwargs = {"json": {"option": "cash"}} if path == "accept" else {}
        assert_error(api.client.post(f"/v1/claims/{view['id']}/{path}", headers=other, **kwargs), 404)
    adjuster = api.user("adjuster")
    assert_error(
        api.client.post(f"/v1/claims/{view['id']}/accept", json={"option": "cash"}, headers=adjuster),
        403,
        "forbidden",
    )
    assert _claim(api, view["id"]).state == "offered"
