"""POST /v1/claims/{id}/feedback: the customer rates a closed claim once (1-5, optional comment)."""

from __future__ import annotations

from sqlalchemy import select, update

from storage.tables import AuditEvent, Claim, ClaimFeedback
from tests.api.conftest import ApiHarness, assert_error


def test_a_paid_claim_is_rated_once(api: ApiHarness, customer) -> None:
    view = api.offered_claim(customer)
    url = f"/v1/claims/{view['id']}/feedback"
    assert_error(api.client.post(url, json={"rating": 5}, headers=customer), 409, "feedback_not_yet")
    assert (
        api.client.post(
            f"/v1/claims/{view['id']}/accept", json={"option": "cash"}, headers=customer
        ).status_code
        == 200
    )
    r = api.client.post(
        url, json={"rating": 4, "comment": "  Quick, but the app was confusing.  "}, headers=customer
    )
    assert r.status_code == 201, r.text
    assert r.json()["rating"] == 4 and r.json()["comment"] == "Quick, but the app was confusing."
    assert_error(api.client.post(url, json={"rating": 1}, headers=customer), 409, "feedback_already_given")
    with api.services.sessions() as session:
        assert [f.rating for f in session.scalars(select(ClaimFeedback))] == [4]
        notes = session.scalars(select(AuditEvent).where(AuditEvent.action == "feedback")).all()
        assert [n.detail for n in notes] == [{"rating": 4}]


def test_a_denied_claim_may_be_rated_and_bad_ratings_are_422(api: ApiHarness, customer) -> None:
    r = api.post_claim(customer)
    api.drain()
    claim_id = r.json()["id"]
    with api.services.sessions() as session:
        session.execute(update(Claim).where(Claim.id == claim_id).values(state="denied"))
        session.commit()
    url = f"/v1/claims/{claim_id}/feedback"
    for body in ({"rating": 0}, {"rating": 6}, {"rating": "five"}, {}, {"rating": 3, "comment": "x" * 1001}):
        assert_error(api.client.post(url, json=body, headers=customer), 422)
    assert_error(api.client.post(url, json={"rating": 3, "comment": "bad\x07bell"}, headers=customer), 422)
    assert_error(api.client.post(url, json={"rating": 3}, headers=api.user()), 404)  # not theirs
    assert api.client.post(url, json={"rating": 2}, headers=customer).status_code == 201
