"""The review flow through the HTTP API: a claim lands in review, the queue shows it, an adjuster takes
it and decides; the customer sees each outcome, adds photos when asked, and the claim is assessed
again. Leases under races, validation, access, ordering, repeat claims and notes."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from claims.deadlines import review_deadlines
from claims.money import amount_text
from storage.tables import AuditEvent, Claim, PayoutInstruction, Photo, PhotoLabel, ReviewDecision, utcnow
from tests.api.conftest import NO_SUCH_ID, OFFER_ALL, ApiHarness, MakeApi, assert_error, jpeg_bytes, photo
from tests.factories import REVIEW_ALL


@pytest.fixture
def api(make_api: MakeApi) -> ApiHarness:
    return make_api(policy=REVIEW_ALL)


@pytest.fixture
def adjuster(api: ApiHarness) -> dict[str, str]:
    return api.user("adjuster")


def reviewed_claim(api: ApiHarness, customer: dict[str, str], photos: int = 2, **fields: Any) -> str:
    """A claim filed through the API and assessed into review; returns its id."""
    r = api.post_claim(customer, [photo(jpeg_bytes(seed)) for seed in range(1, photos + 1)], **fields)
    assert r.status_code == 202, r.text
    api.drain()
    claim_id = r.json()["id"]
    assert stored(api, claim_id).state == "in_review"
    return claim_id


def stored(api: ApiHarness, claim_id: str) -> Claim:
    with api.services.sessions() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        _ = claim.photos
        return claim


def case(api: ApiHarness, claim_id: str, headers: dict[str, str]) -> dict[str, Any]:
    r = api.client.get(f"/v1/review/{claim_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def grades(api: ApiHarness, claim_id: str, grade: int = 2) -> dict[str, int]:
    return {p.id: grade for p in stored(api, claim_id).photos}


def take(api: ApiHarness, claim_id: str, headers: dict[str, str]):
    return api.client.post(f"/v1/review/{claim_id}/take", headers=headers)


def decide(api: ApiHarness, claim_id: str, headers: dict[str, str], **body: Any):
    body.setdefault("grades", grades(api, claim_id))
    return api.client.post(f"/v1/review/{claim_id}/decision", json=body, headers=headers)


def set_claim(api: ApiHarness, claim_id: str, **values: Any) -> None:
    with api.services.sessions() as session:
        claim = session.get(Claim, claim_id)
        for name, value in values.items():
            setattr(claim, name, value)
        session.commit()


def queue(api: ApiHarness, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = api.client.get("/v1/review/queue", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["items"])
    return body["items"]


# --------------------------------------------------------------------------------------------------
# Into review, the queue, the case


def test_a_claim_in_review_is_queued_with_its_deadlines(api: ApiHarness, customer, adjuster) -> None:
    claim_id = reviewed_claim(api, customer, declared_value="150.00")
    claim = stored(api, claim_id)
    expected = review_deadlines(
        submitted_at=claim.created_at,
        entered_review_at=claim.entered_review_at,
        declared_value=claim.declared_value,
        currency=claim.currency,
        cfg=api.services.deadlines,
    )
    assert claim.entered_review_at == claim.state_changed_at
    assert claim.first_response_due_at == expected.first_response_due
    assert claim.decision_due_at == expected.decision_due

    [item] = queue(api, adjuster)
    assert item["claim_id"] == claim_id and item["url"] == f"/v1/review/{claim_id}"
    assert item["reasons"] == ["low_confidence"]
    assert item["declared_value"] == "150.00" and item["currency"] == "CNY"
    assert item["model_grade"] == claim.claim_grade and item["confidence"] == str(claim.confidence)
    assert item["watch"] is False and item["prior_claims"] == 0
    assert item["lease_holder"] is None and item["state"] == "in_review"
    assert item["sla"]["state"] in ("on_time", "due_soon", "overdue") and "remaining_s" in item["sla"]
    # The customer is told when to expect the decision: the decision deadline.
    view = api.client.get(f"/v1/claims/{claim_id}", headers=customer).json()
    assert view["status"] == "in_review"
    assert view["expected_decision_at"].replace("Z", "+00:00") == expected.decision_due.isoformat()

    detail = case(api, claim_id, adjuster)
    assert detail["claim"]["id"] == claim_id and detail["queue"]["claim_id"] == claim_id
    assert [p["position"] for p in detail["photos"]] == [1, 2]
    assert all(p["url"] == f"/v1/claims/{claim_id}/photos/{p['id']}" for p in detail["photos"])
    assert api.client.get(detail["photos"][0]["url"], headers=adjuster).status_code == 200
    assert detail["decision"]["kind"] == "review" and detail["history"] == [] and detail["notes"] == []
    fraction = REVIEW_ALL.grade_fractions[claim.claim_grade]
    assert Decimal(detail["proposed_amount"]) == (fraction * Decimal("150.00")).quantize(Decimal("0.01"))
    assert [e["to_state"] for e in detail["timeline"]] == ["submitted", "assessing", "in_review"]
    assert_error(api.client.get(f"/v1/review/{NO_SUCH_ID}", headers=adjuster), 404, "not_found")
    assert_error(api.client.get("/v1/review/no-such-claim", headers=adjuster), 422)  # not an id


def test_a_declined_offer_enters_review_with_deadlines(make_api: MakeApi) -> None:
    api = make_api(policy=OFFER_ALL)
    customer, adjuster = api.user(), api.user("adjuster")
    view = api.offered_claim(customer)
    r = api.client.post(f"/v1/claims/{view['id']}/decline", headers=customer)
    assert r.status_code == 200 and r.json()["status"] == "in_review"
    claim = stored(api, view["id"])
    assert claim.entered_review_at is not None and claim.first_response_due_at is not None
    expected = review_deadlines(
        submitted_at=claim.created_at,
        entered_review_at=claim.entered_review_at,
        declared_value=claim.declared_value,
        currency=claim.currency,
        cfg=api.services.deadlines,
    )
    assert (claim.first_response_due_at, claim.decision_due_at) == (
        expected.first_response_due,
        expected.decision_due,
    )
    [item] = queue(api, adjuster)
    assert item["reasons"] == ["customer_declined"]


# --------------------------------------------------------------------------------------------------
# Decisions, as the customer sees them


def _labels(api: ApiHarness, claim_id: str) -> tuple[ReviewDecision, dict[str, int]]:
    with api.services.sessions() as session:
        record = session.scalars(select(ReviewDecision).where(ReviewDecision.claim_id == claim_id)).one()
        labels = session.scalars(select(PhotoLabel).where(PhotoLabel.decision_id == record.id)).all()
        return record, {label.photo_id: label.grade for label in labels}


@pytest.mark.parametrize("action", ["approve", "adjust", "deny", "request_photos"])
def test_each_decision_and_what_the_customer_sees(api: ApiHarness, customer, adjuster, action) -> None:
    claim_id = reviewed_claim(api, customer, declared_value="300.00")
    proposed = case(api, claim_id, adjuster)["proposed_amount"]
    r = take(api, claim_id, adjuster)
    assert r.status_code == 200, r.text
    assert r.json()["lease_seconds"] == 900
    photo_ids = [p.id for p in sorted(stored(api, claim_id).photos, key=lambda p: p.position)]
    given = dict(zip(photo_ids, [3, 1], strict=True))
    body: dict[str, Any] = {"action": action, "grades": given}
    if action == "adjust":
        body |= {"amount": "120.50", "reason": "Only the lid was damaged; the contents were fine."}
    elif action == "deny":
        body |= {"reason": "The photos show no damage to the parcel."}
    elif action == "request_photos":
        body |= {"reason": "Please add a photo of the shipping label."}
    r = decide(api, claim_id, adjuster, **body)
    assert r.status_code == 200, r.text

    record, labels = _labels(api, claim_id)
    assert labels == given
    assert record.action == action and record.model_grade == stored(api, claim_id).claim_grade
    assert record.model_probs == stored(api, claim_id).claim_probs

    r = api.client.get(f"/v1/claims/{claim_id}", headers=customer)
    assert r.status_code == 200
    view = r.json()
    decision = view["decision"]
    if action in ("approve", "adjust"):
        paid = proposed if action == "approve" else "120.50"
        assert view["status"] == "payout_instructed"
        assert decision["kind"] == "approved" and decision["amount"] == paid
        assert view["payout_amount"] == paid and view["accepted_option"] == "cash"
        assert paid in decision["explanation"]
        assert decision["reason"] == body.get("reason")
        moves = [(t["from_state"], t["to_state"], t["actor"]) for t in view["timeline"][-2:]]
        assert moves == [
            ("in_review", "approved", "adjuster"),
            ("approved", "payout_instructed", "ClaimLane"),
        ]
        with api.services.sessions() as session:  # the finance outbox got exactly this payout
            outbox = session.scalars(
                select(PayoutInstruction).where(PayoutInstruction.claim_id == claim_id)
            ).all()
            assert [(p.option, amount_text(p.amount, p.currency), p.currency) for p in outbox] == [
                ("cash", paid, "CNY")
            ]
    elif action == "deny":
        assert view["status"] == "denied"
        assert decision == {
            "kind": "denied",
            "reason": body["reason"],
            "explanation": f"An adjuster reviewed your claim and could not approve it: {body['reason']}",
        }
        assert view["timeline"][-1]["actor"] == "adjuster"
        assert view["timeline"][-1]["reasons"] == ["adjuster_deny"]
    else:
        assert view["status"] == "needs_photos"
        assert decision["kind"] == "needs_photos" and decision["reason"] == body["reason"]
        assert decision["add_photos_url"] == f"/v1/claims/{claim_id}/photos"
        assert view["expected_decision_at"] is None  # waiting for the customer
    # Never who decided.
    adjuster_id = adjuster["X-Test-User-Id"]
    assert f"adjuster:{adjuster_id}" not in r.text and "adjuster-" not in r.text
    # Staff see who it was.
    staff = api.client.get(f"/v1/claims/{claim_id}", headers=adjuster).json()
    assert any(t["actor"] == f"adjuster:{adjuster_id}" for t in staff["timeline"])
    # Decided: out of the queue, and no second decision.
    assert queue(api, adjuster) == []
    assert_error(decide(api, claim_id, adjuster, action="deny", reason="again"), 409, "not_in_review")


@pytest.mark.parametrize(("policy", "outcome"), [(REVIEW_ALL, "in_review"), (OFFER_ALL, "offered")])
def test_requested_photos_are_added_and_the_claim_assessed_again(
    api: ApiHarness, customer, adjuster, policy, outcome
) -> None:
    claim_id = reviewed_claim(api, customer, photos=1)
    assert take(api, claim_id, adjuster).status_code == 200
    r = decide(api, claim_id, adjuster, action="request_photos", reason="Show the label, please.")
    assert r.status_code == 200, r.text
    api.services.policy = policy  # what the second assessment decides

    files = [("photos", photo(jpeg_bytes(7))), ("photos", photo(jpeg_bytes(8)))]
    headers = {**customer, "Idempotency-Key": "more-photos-1"}
    r = api.client.post(f"/v1/claims/{claim_id}/photos", files=files, headers=headers)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "assessing" and body["photos_added"] == 2
    assert body["url"] == f"/v1/claims/{claim_id}" and r.headers["location"] == body["url"]
    api.drain()

    # A retry with the same key is answered as before, and adds nothing.
    again = api.client.post(f"/v1/claims/{claim_id}/photos", files=files, headers=headers)
    assert again.status_code == 202 and again.json() == body
    assert again.headers.get("idempotent-replayed") == "true"

    claim = stored(api, claim_id)
    assert claim.state == outcome and claim.assessment_count == 2
    photos = sorted(claim.photos, key=lambda p: p.position)
    assert [p.position for p in photos] == [1, 2, 3]
    assert all(p.grade is not None and p.grade_probs and p.model_version for p in photos)  # all graded
    view = api.client.get(f"/v1/claims/{claim_id}", headers=customer).json()
    assert view["status"] == outcome and len(view["photos"]) == 3
    moves = [(t["from_state"], t["to_state"], t["actor"], t["reasons"]) for t in view["timeline"][-2:]]
    assert moves[0] == ("needs_photos", "assessing", "you", ["photos_added"])
    assert moves[1][:3] == ("assessing", outcome, "ClaimLane")
    if outcome == "in_review":
        assert claim.entered_review_at > claim.decided_at  # re-entered review: a fresh first response
        assert claim.lease_holder_id is None
        assert [i["claim_id"] for i in queue(api, adjuster)] == [claim_id]
    else:
        assert view["decision"]["kind"] == "offer"


def test_adding_photos_is_refused_unless_asked(api: ApiHarness, customer, adjuster) -> None:
    claim_id = reviewed_claim(api, customer, photos=1)
    url = f"/v1/claims/{claim_id}/photos"
    files = [("photos", photo(jpeg_bytes(9)))]
    before = api.counts()
    error = assert_error(
        api.client.post(url, files=files, headers={**customer, "Idempotency-Key": "k1"}),
        409,
        "photos_not_requested",
    )
    assert "in_review" in error["message"]
    assert_error(api.client.post(url, files=files, headers=customer), 400, "idempotency_key_missing")
    other = api.user()
    assert_error(api.client.post(url, files=files, headers={**other, "Idempotency-Key": "k2"}), 404)
    assert_error(api.client.post(url, files=files, headers={**adjuster, "Idempotency-Key": "k3"}), 403)
    assert api.counts() == before  # nothing stored, every key released

    # Asked for photos: a bad photo is refused, all or nothing, and the claim still waits for photos.
    assert take(api, claim_id, adjuster).status_code == 200
    assert decide(api, claim_id, adjuster, action="request_photos", reason="more").status_code == 200
    before = api.counts()
    bad = [("photos", photo(jpeg_bytes(10))), ("photos", photo(b"not a photo at all", "x.jpg"))]
    error = assert_error(api.client.post(url, files=bad, headers={**customer, "Idempotency-Key": "k1"}), 422)
    assert "photos[1]" in error["message"]
    assert api.counts() == before and stored(api, claim_id).state == "needs_photos"
    # The same key (released) may now carry a good upload.
    r = api.client.post(url, files=files, headers={**customer, "Idempotency-Key": "k1"})
    assert r.status_code == 202, r.text
    api.drain()


# --------------------------------------------------------------------------------------------------
# Leases


def test_two_adjusters_racing_to_take_one_wins(api: ApiHarness, customer) -> None:
    claim_id = reviewed_claim(api, customer, photos=1)
    a, b = api.user("adjuster"), api.user("adjuster")
    barrier = threading.Barrier(2, timeout=20)
    statuses: list[int] = []

    def run(headers: dict[str, str]) -> None:
        barrier.wait()
        statuses.append(take(api, claim_id, headers).status_code)

    threads = [threading.Thread(target=run, args=(h,)) for h in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200, 409]
    holder = stored(api, claim_id).lease_holder_id
    assert str(holder) in (a["X-Test-User-Id"], b["X-Test-User-Id"])


def test_only_the_lease_holder_decides_until_it_expires(api: ApiHarness, customer) -> None:
    claim_id = reviewed_claim(api, customer, photos=1)
    a, b = api.user("adjuster"), api.user("admin")
    assert_error(decide(api, claim_id, a, action="deny", reason="x"), 409, "lease_required")
    r = take(api, claim_id, a)
    assert r.status_code == 200
    until = stored(api, claim_id).lease_expires_at
    error = assert_error(take(api, claim_id, b), 409, "case_taken")
    assert error["message"] == f"taken by another adjuster until {until:%H:%M} UTC"
    assert_error(decide(api, claim_id, b, action="deny", reason="x"), 409, "case_taken")
    [item] = queue(api, b, status="taken")
    assert item["lease_holder"] and item["lease_expires_at"]
    assert take(api, claim_id, a).status_code == 200  # A renews

    # A's lease runs out: B may take the case, and A can no longer decide.
    set_claim(api, claim_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    assert [i["claim_id"] for i in queue(api, b, status="unassigned")] == [claim_id]
    assert take(api, claim_id, b).status_code == 200
    assert_error(decide(api, claim_id, a, action="deny", reason="x"), 409, "case_taken")
    r = decide(api, claim_id, b, action="deny", reason="no damage visible")
    assert r.status_code == 200 and r.json()["status"] == "denied"


# --------------------------------------------------------------------------------------------------
# Validation and access


def test_invalid_decisions_are_422(api: ApiHarness, customer, adjuster) -> None:
    claim_id = reviewed_claim(api, customer, declared_value="300.00")
    assert take(api, claim_id, adjuster).status_code == 200
    [first, second] = [p.id for p in sorted(stored(api, claim_id).photos, key=lambda p: p.position)]
    proposed = Decimal(case(api, claim_id, adjuster)["proposed_amount"])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"action": "approve", "grades": {}}, "grades"),
        ({"action": "approve", "grades": {first: 2}}, "grades"),
        ({"action": "approve", "grades": {first: 2, second: 9}}, f"grades.{second}"),
        ({"action": "approve", "grades": {first: 2, second: 2, "x": 1}}, "grades.x"),
        ({"action": "approve", "amount": str(proposed + 1)}, "amount"),
        ({"action": "adjust", "amount": "ten", "reason": "r"}, "amount"),
        ({"action": "adjust", "amount": "-5", "reason": "r"}, "amount"),
        ({"action": "adjust", "amount": "300.01", "reason": "r"}, "amount"),
        ({"action": "adjust", "reason": "r"}, "amount"),
        ({"action": "adjust", "amount": "100"}, "reason"),
        ({"action": "deny"}, "reason"),
        ({"action": "deny", "reason": ""}, "reason"),
        ({"action": "request_photos"}, "reason"),
    ]
    for body, field_name in cases:
        error = assert_error(decide(api, claim_id, adjuster, **body), 422, "validation_error")
        assert field_name in [d["field"] for d in error["details"]], (body, error)
    # Refused by the schema: an unknown action, a grade that is not a whole number, unknown fields.
    for body in (
        {"action": "pay_double"},
        {"action": "approve", "grades": {first: "2", second: 2}},
        {"action": "approve", "grades": {first: 2.5, second: 2}},
        {"action": "approve", "note": "x"},
    ):
        assert_error(decide(api, claim_id, adjuster, **body), 422, "validation_error")
    claim = stored(api, claim_id)
    assert claim.state == "in_review" and claim.decided_at is None


def test_review_is_for_adjusters_and_admins_only(api: ApiHarness, customer) -> None:
    claim_id = reviewed_claim(api, customer, photos=1)
    calls = [
        ("GET", "/v1/review/queue", None),
        ("GET", f"/v1/review/{claim_id}", None),
        ("POST", f"/v1/review/{claim_id}/take", None),
        ("POST", f"/v1/review/{claim_id}/decision", {"action": "deny", "reason": "x", "grades": {}}),
        ("POST", f"/v1/review/{claim_id}/notes", {"text": "hello"}),
        ("GET", f"/v1/review/{claim_id}/photos/x/heatmap", None),
    ]
    for method, path, body in calls:
        assert_error(api.client.request(method, path, json=body, headers=customer), 403, "forbidden")
        assert_error(api.client.request(method, path, json=body), 401, "unauthorized")
    assert api.client.get("/v1/review/queue", headers=api.user("admin")).status_code == 200
    assert stored(api, claim_id).state == "in_review"


# --------------------------------------------------------------------------------------------------
# Queue order, repeat claims, notes, heatmaps


def test_queue_puts_overdue_first(api: ApiHarness, customer, adjuster) -> None:
    ids = [reviewed_claim(api, customer, photos=1, tracking_number=f"ORDER-{i}") for i in range(3)]
    now = utcnow()
    set_claim(
        api, ids[0], decision_due_at=now + timedelta(days=2), first_response_due_at=now + timedelta(hours=5)
    )
    set_claim(
        api, ids[1], decision_due_at=now + timedelta(days=1), first_response_due_at=now + timedelta(hours=5)
    )
    set_claim(
        api, ids[2], decision_due_at=now + timedelta(days=4), first_response_due_at=now - timedelta(hours=1)
    )
    items = queue(api, adjuster)
    assert [i["claim_id"] for i in items] == [ids[2], ids[1], ids[0]]
    assert [i["sla"]["state"] for i in items] == ["overdue", "on_time", "on_time"]
    assert items[0]["sla"]["remaining_s"] < 0
    assert [i["claim_id"] for i in queue(api, adjuster, status="overdue")] == [ids[2]]
    assert len(queue(api, adjuster, limit=1)) == 1
    assert queue(api, adjuster, value_band="over_2000") == []
    assert len(queue(api, adjuster, value_band="under_500", reason="low_confidence")) == 3
    for params in ({"value_band": "huge"}, {"status": "lost"}, {"limit": 0}, {"limit": 100000}):
        assert_error(api.client.get("/v1/review/queue", params=params, headers=adjuster), 422)


def test_repeat_customers_and_parcels_are_watched(api: ApiHarness, customer, adjuster) -> None:
    first = reviewed_claim(api, customer, photos=1, tracking_number="REPEAT-A")
    second = reviewed_claim(api, customer, photos=1, tracking_number="REPEAT-B")
    stranger = api.user()
    parcel = reviewed_claim(api, stranger, photos=1, tracking_number="REPEAT-A")  # same parcel as `first`
    alone = reviewed_claim(api, api.user(), photos=1, tracking_number="ALONE-1")
    items = {i["claim_id"]: i for i in queue(api, adjuster)}
    assert (items[first]["watch"], items[first]["prior_claims"]) == (True, 2)  # same customer + parcel
    assert (items[second]["watch"], items[second]["prior_claims"]) == (True, 1)
    assert (items[parcel]["watch"], items[parcel]["prior_claims"]) == (True, 1)
    assert (items[alone]["watch"], items[alone]["prior_claims"]) == (False, 0)
    assert stored(api, second).watch and stored(api, parcel).watch and not stored(api, alone).watch

    history = case(api, first, adjuster)["history"]
    assert {(h["id"], h["same_customer"], h["same_tracking_number"]) for h in history} == {
        (second, True, False),
        (parcel, False, True),
    }
    assert all(h["outcome"] is None and h["declared_value"] == "100.00" for h in history)
    # A decided claim shows how it ended.
    assert take(api, second, adjuster).status_code == 200
    assert decide(api, second, adjuster, action="deny", reason="duplicate claim").status_code == 200
    history = {h["id"]: h for h in case(api, first, adjuster)["history"]}
    assert history[second]["outcome"] == "denied" and history[second]["state"] == "denied"


def test_notes_are_in_the_case_and_the_audit_log_but_not_for_customers(
    api: ApiHarness, customer, adjuster
) -> None:
    claim_id = reviewed_claim(api, customer, photos=1)
    r = api.client.post(
        f"/v1/review/{claim_id}/notes", json={"text": "Customer called: box was wet."}, headers=adjuster
    )
    assert r.status_code == 201, r.text
    note = r.json()
    assert note["text"] == "Customer called: box was wet." and note["author_id"] == int(
        adjuster["X-Test-User-Id"]
    )
    assert note["author"]
    detail = case(api, claim_id, adjuster)
    assert [n["text"] for n in detail["notes"]] == ["Customer called: box was wet."]
    [entry] = [e for e in detail["timeline"] if e["action"] == "note"]
    assert entry["detail"]["text"] == "Customer called: box was wet."
    assert entry["actor"] == f"adjuster:{adjuster['X-Test-User-Id']}"
    with api.services.sessions() as session:
        assert session.scalars(
            select(AuditEvent).where(AuditEvent.claim_id == claim_id, AuditEvent.action == "note")
        ).one()
    view = api.client.get(f"/v1/claims/{claim_id}", headers=customer)
    assert "box was wet" not in view.text
    for text in ("", "   ", "x" * 4001):
        assert_error(
            api.client.post(f"/v1/review/{claim_id}/notes", json={"text": text}, headers=adjuster), 422
        )
    assert_error(
        api.client.post(f"/v1/review/{NO_SUCH_ID}/notes", json={"text": "hi"}, headers=adjuster), 404
    )


def test_heatmaps_are_served_to_adjusters(api: ApiHarness, customer, adjuster) -> None:
    claim_id = reviewed_claim(api, customer, photos=1)
    [only] = stored(api, claim_id).photos
    url = f"/v1/review/{claim_id}/photos/{only.id}/heatmap"
    assert case(api, claim_id, adjuster)["photos"][0]["heatmap_url"] is None
    assert_error(api.client.get(url, headers=adjuster), 404)
    api.services.store.put("heatmaps/test.png", b"\x89PNG fake", "image/png")
    with api.services.sessions() as session:
        session.get(Photo, only.id).heatmap_key = "heatmaps/test.png"
        session.commit()
    assert case(api, claim_id, adjuster)["photos"][0]["heatmap_url"] == url
    r = api.client.get(url, headers=adjuster)
    assert r.status_code == 200 and r.content == b"\x89PNG fake" and r.headers["content-type"] == "image/png"


def test_openapi_documents_the_review_api(api: ApiHarness) -> None:
    spec = api.client.get("/openapi.json").json()
    for path in (
        "/v1/review/queue",
        "/v1/review/{claim_id}",
        "/v1/review/{claim_id}/take",
        "/v1/review/{claim_id}/decision",
        "/v1/review/{claim_id}/notes",
        "/v1/claims/{claim_id}/photos",
    ):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    for name in ("QueueView", "CaseView", "DecisionRequest", "ApprovedView", "DeniedView", "NeedsPhotosView"):
        assert name in schemas, name
