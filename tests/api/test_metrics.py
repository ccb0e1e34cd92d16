"""GET /metrics: who may scrape it, and that the business counters move by exactly what happened
(claims filed, offers, acceptances by option, reviews by reason, payouts by currency, deadlines,
ratings, drift histograms) while the database gauges describe the queues as they are."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import ApiHarness, MakeApi, approve_case, assert_error, jpeg_bytes, photo
from tests.conftest import TINY_MODEL_VERSION

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api: ApiHarness, headers: dict[str, str]) -> Samples:
    r = api.client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_the_token_or_an_admin_or_lead_key(make_api: MakeApi) -> None:
    api = make_api(metrics_token="s3cret-token-for-prometheus")
    assert_error(api.client.get("/metrics"), 401)
    assert_error(api.client.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
    for role in ("customer", "adjuster", "integration"):
        assert_error(api.client.get("/metrics", headers=api.user(role)), 403)
    for headers in (
        api.user("admin"),
        api.user("lead"),
        {"Authorization": "Bearer s3cret-token-for-prometheus"},
    ):
        assert api.client.get("/metrics", headers=headers).status_code == 200


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, make_api: MakeApi) -> ApiHarness:
    if request.param == "postgresql":
        return make_api(database_url=request.getfixturevalue("fresh_postgres"))
    return make_api()


def test_business_counters_move_by_what_happened(api: ApiHarness) -> None:
    admin, customer, adjuster = api.user("admin"), api.user(), api.user("adjuster")
    before = scrape(api, admin)

    # Three claims get instant offers; one is paid in cash, one reshipped, one declined and then
    # approved by a person; a fourth, on a parcel the carrier has not told us about, goes to review.
    cash, reship, declined = (api.offered_claim(customer) for _ in range(3))
    paid = api.accept(cash["id"], customer)
    assert paid.status_code == 200, paid.text
    r = api.accept(reship["id"], customer, option="reshipment")
    assert r.status_code == 200, r.text
    assert api.client.post(f"/v1/claims/{declined['id']}/decline", headers=customer).status_code == 200
    unknown_photo = jpeg_bytes(4242)
    r = api.post_claim(customer, [photo(unknown_photo)], shipment=False)
    assert r.status_code == 202, r.text
    api.drain()
    unknown = api.client.get(r.json()["url"], headers=customer).json()
    assert unknown["status"] == "in_review", unknown

    approve_case(api.client, adjuster, declined["id"], grade=1)
    approved = api.client.get(f"/v1/claims/{declined['id']}", headers=customer).json()
    assert (
        api.client.post(f"/v1/claims/{cash['id']}/feedback", json={"rating": 5}, headers=customer).status_code
        == 201
    )

    after = scrape(api, admin)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("claimlane_claims_filed_total") == 4
    assert moved("claimlane_assessments_total", model_version=TINY_MODEL_VERSION, outcome="offer") == 3
    assert moved("claimlane_assessments_total", model_version=TINY_MODEL_VERSION, outcome="review") == 1
    assert moved("claimlane_offers_made_total", currency="CNY") == 3
    assert moved("claimlane_offers_accepted_total", option="cash") == 1
    assert moved("claimlane_offers_accepted_total", option="reshipment") == 1
    assert moved("claimlane_reviews_total", reason="customer_declined") == 1
    assert moved("claimlane_reviews_total", reason="shipment_unverified") == 1
    assert moved("claimlane_payouts_total", currency="CNY", option="cash") == 2  # accepted + approved
    assert moved("claimlane_payouts_total", currency="CNY", option="reshipment") == 1
    expected = Decimal(paid.json()["payout_amount"]) + Decimal(approved["payout_amount"])
    assert Decimal(str(round(moved("claimlane_payout_amount_total", currency="CNY"), 2))) == expected
    assert (
        moved("claimlane_sla_deadlines_total", clock="decision", outcome="met") == 4
    )  # 3 offers + 1 approval
    assert moved("claimlane_sla_deadlines_total", clock="first_response", outcome="met") == 1
    assert moved("claimlane_sla_deadlines_total", clock="decision", outcome="missed") == 0
    assert moved("claimlane_feedback_total", rating="5") == 1
    assert moved("claimlane_assessment_confidence_count", model_version=TINY_MODEL_VERSION) == 4
    assert moved("claimlane_assessment_p_damaged_count", model_version=TINY_MODEL_VERSION) == 4
    assert 0 <= moved("claimlane_assessment_p_damaged_sum", model_version=TINY_MODEL_VERSION) <= 4

    # Technical: requests by route template and status, photo bytes, stage timings, the model.
    assert moved("claimlane_http_requests_total", method="POST", route="/v1/claims", status="202") == 4
    assert (
        moved(
            "claimlane_http_requests_total", method="POST", route="/v1/claims/{claim_id}/accept", status="200"
        )
        == 2
    )
    # The app's long poll for a decision is labelled apart from plain reads of a claim.
    api.client.get(f"/v1/claims/{cash['id']}", params={"wait": 1}, headers=customer)
    api.client.get(f"/v1/claims/{cash['id']}", headers=customer)
    again = scrape(api, admin)
    for route in ("/v1/claims/{claim_id}?wait", "/v1/claims/{claim_id}"):
        labels = {"method": "GET", "route": route, "status": "200"}
        assert value(again, "claimlane_http_requests_total", **labels) > value(
            after, "claimlane_http_requests_total", **labels
        )
    assert moved("claimlane_photos_received_total") == 4
    assert moved("claimlane_photo_bytes_received_total") >= len(unknown_photo)
    assert moved("claimlane_assessment_stage_seconds_count", stage="cnn") == 4
    assert moved("claimlane_assessment_stage_seconds_count", stage="policy") == 4
    assert value(after, "claimlane_model_serving", version=TINY_MODEL_VERSION) == 1

    # Gauges of the database as it is: the unknown parcel's claim waits for a person, unassigned.
    assert value(after, "claimlane_queue_depth", queue="review") == 1
    assert value(after, "claimlane_queue_depth", queue="assessment") == 0
    assert value(after, "claimlane_queue_oldest_age_seconds", queue="review") >= 0
    assert (
        value(after, "claimlane_sla_open", clock="first_response", state="on_time")
        + value(after, "claimlane_sla_open", clock="first_response", state="due_soon")
        + value(after, "claimlane_sla_open", clock="first_response", state="overdue")
        == 1
    )
    assert value(after, "claimlane_queue_depth", queue="payout_instructions") == 3
    assert value(after, "claimlane_metrics_collect_ok") == 1


def test_a_refused_change_counts_nothing(api: ApiHarness) -> None:
    """A second acceptance of the same offer (a retry) and an illegal one roll back: no counter moves."""
    admin, customer = api.user("admin"), api.user()
    view = api.offered_claim(customer)
    assert api.accept(view["id"], customer).status_code == 200
    before = scrape(api, admin)
    api.accept(view["id"], customer)
    assert_error(api.client.post(f"/v1/claims/{view['id']}/decline", headers=customer), 409)
    after = scrape(api, admin)
    for name, labels in (
        ("claimlane_offers_accepted_total", {"option": "cash"}),
        ("claimlane_payouts_total", {"currency": "CNY", "option": "cash"}),
        ("claimlane_reviews_total", {"reason": "customer_declined"}),
    ):
        assert value(after, name, **labels) == value(before, name, **labels), name


def test_the_operations_overview_adds_up_on_both_backends(api: ApiHarness) -> None:
    """The figures of the leads' page (services.operations), on SQLite and PostgreSQL alike."""
    from services import operations

    customer, adjuster = api.user(), api.user("adjuster")
    paid, declined = api.offered_claim(customer), api.offered_claim(customer)
    assert api.accept(paid["id"], customer).status_code == 200
    assert api.client.post(f"/v1/claims/{declined['id']}/decline", headers=customer).status_code == 200
    approve_case(api.client, adjuster, declined["id"], grade=2)
    assert (
        api.client.post(f"/v1/claims/{paid['id']}/feedback", json={"rating": 3}, headers=customer).status_code
        == 201
    )

    o = operations.overview(api.services.sessions)
    for period in (o.today, o.month):
        assert (period.claims, period.assessed, period.fast_lane) == (2, 2, 2)
        assert period.automation_rate == 1.0
        assert period.payout_count == 2 and set(period.payouts) == {"CNY"}
        assert dict(period.reviews_by_reason) == {"customer_declined": 1}
        assert (
            period.fast_lane_checked.met == 1 and period.fast_lane_checked.pending == 1
        )  # approved as graded
        assert period.sla["first_response"].met == 1 and period.sla["decision"].met == 3
        assert period.ratings[3] == 1 and period.mean_rating == 3.0
        assert [(w[1], w[2]) for w in period.workload] == [(1, 0)]
    assert sum(d[1] for d in o.month.daily) == 2 and len(o.month.daily) == 30
    assert o.oldest_open is None and o.queue["review"] == 0
