"""The finance outbox: one payout instruction per paid claim whatever retries and races happen, listed
and exported for finance, and confirmed paid once (idempotently)."""

from __future__ import annotations

import csv
import io
import threading

import pytest
from sqlalchemy import func, select

from storage.tables import AuditEvent, PayoutInstruction
from tests.api.conftest import ApiHarness, MakeApi, assert_error


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, make_api: MakeApi) -> ApiHarness:
    if request.param == "postgresql":
        return make_api(database_url=request.getfixturevalue("fresh_postgres"))
    return make_api()


def _instructions(api: ApiHarness, claim_id: str) -> int:
    with api.services.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(PayoutInstruction)
                .where(PayoutInstruction.claim_id == claim_id)
            )
            or 0
        )


def test_concurrent_accepts_make_exactly_one_instruction(api: ApiHarness) -> None:
    customer = api.user()
    view = api.offered_claim(customer)
    statuses: list[int] = []

    def accept() -> None:
        r = api.client.post(f"/v1/claims/{view['id']}/accept", json={"option": "cash"}, headers=customer)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=accept) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}, statuses
    assert _instructions(api, view["id"]) == 1
    # Retries of the acceptance afterwards: still one.
    for _ in range(3):
        api.client.post(f"/v1/claims/{view['id']}/accept", json={"option": "cash"}, headers=customer)
    assert _instructions(api, view["id"]) == 1


def test_finance_lists_exports_and_confirms_payouts(api: ApiHarness) -> None:
    customer, admin = api.user(), api.user("admin")
    paid = []
    for option in ("cash", "reshipment"):
        view = api.offered_claim(customer)
        r = api.client.post(f"/v1/claims/{view['id']}/accept", json={"option": option}, headers=customer)
        assert r.status_code == 200, r.text
        paid.append((view["id"], option, r.json()["payout_amount"]))
    page = api.client.get("/v1/admin/payouts", params={"status": "pending", "limit": 1}, headers=admin).json()
    assert [i["claim_id"] for i in page["items"]] == [paid[0][0]] and page["next_after"] is not None
    rest = api.client.get(
        "/v1/admin/payouts", params={"status": "pending", "after": page["next_after"]}, headers=admin
    ).json()
    assert [(i["claim_id"], i["option"], i["amount"]) for i in rest["items"]] == [paid[1]]
    assert rest["items"][0]["amount"] is None  # a reshipment pays no money
    payout_id = page["items"][0]["id"]

    r = api.client.post(
        f"/v1/admin/payouts/{payout_id}/paid", json={"payment_ref": "BANK-001"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["changed"] is True and r.json()["payment_ref"] == "BANK-001"
    again = api.client.post(
        f"/v1/admin/payouts/{payout_id}/paid", json={"payment_ref": "BANK-001"}, headers=admin
    )
    assert again.status_code == 200 and again.json()["changed"] is False
    assert again.json()["paid_at"] == r.json()["paid_at"]
    assert_error(
        api.client.post(
            f"/v1/admin/payouts/{payout_id}/paid", json={"payment_ref": "BANK-999"}, headers=admin
        ),
        409,
        "payout_already_paid",
    )
    assert_error(
        api.client.post("/v1/admin/payouts/999999/paid", json={"payment_ref": "X"}, headers=admin), 404
    )
    assert_error(
        api.client.post(f"/v1/admin/payouts/{payout_id}/paid", json={"payment_ref": ""}, headers=admin), 422
    )
    with api.services.sessions() as session:  # the payment is in the claim's audit log, once
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.claim_id == paid[0][0], AuditEvent.action == "payout_paid")
        ).all()
        assert [e.detail["payment_ref"] for e in events] == ["BANK-001"]

    r = api.client.get("/v1/admin/payouts.csv", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["claim_id"], row["option"], row["amount"], row["payment_ref"]) for row in rows] == [
        (paid[0][0], "cash", paid[0][2], "BANK-001"),
        (paid[1][0], "reshipment", "", ""),
    ]
    assert (
        len(
            list(
                csv.DictReader(
                    io.StringIO(
                        api.client.get("/v1/admin/payouts.csv", params={"status": "paid"}, headers=admin).text
                    )
                )
            )
        )
        == 1
    )
    assert_error(api.client.get("/v1/admin/payouts", headers=customer), 403)


@pytest.mark.parametrize("number", [2**31, 2**63, -1])
def test_ids_beyond_the_database_integer_are_422(api: ApiHarness, number: int) -> None:
    """Found by the fuzzer: 2**31 overflowed PostgreSQL's INTEGER and answered 500."""
    admin = api.user("admin")
    assert_error(api.client.get("/v1/admin/payouts", params={"after": number}, headers=admin), 422)
    assert_error(
        api.client.post(f"/v1/admin/payouts/{number}/paid", json={"payment_ref": "X"}, headers=admin), 422
    )
