"""The team leads' operations page: who sees it, and that it shows what happened (claims, reviews by
reason, workload, satisfaction, the oldest open case) with its plots as inline SVG; then the same
page in a REAL headless Chromium, with a screenshot left in test-artifacts/console-operations.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from tests.api.conftest import approve_case
from tests.console.test_console_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    _sync_api,
    serve,
    watch,
)
from tests.console.test_console_pages import (  # noqa: F401 (the console fixture, by its name)
    DAMAGED_BLUE,
    Console,
    add_user,
    build_console_services,
    console,
)


@pytest.fixture
def busy(request: pytest.FixtureRequest) -> Iterator[tuple[Console, str, str]]:
    """Two claims in review, one approved by an adjuster and rated 4 with a comment."""
    ops: Console = request.getfixturevalue("console")
    first = ops.file_claim(photos=1, base=DAMAGED_BLUE)
    ops.file_claim(photos=1, base=DAMAGED_BLUE)
    approve_case(ops.client, {"Authorization": f"Bearer {ops.adjuster}"}, first, csrf=False)
    r = ops.client.post(
        f"/v1/claims/{first}/feedback",
        json={"rating": 4, "comment": "Quick, but the form was long"},
        headers={"Authorization": f"Bearer {ops.customer}"},
        csrf=False,
    )
    assert r.status_code == 201, r.text
    _, _, lead = add_user(ops.services, "lead")
    yield ops, lead, first


def test_a_lead_signs_in_to_the_operations_page_and_sees_the_figures(busy) -> None:
    ops, lead, approved = busy
    ops.client.cookies.clear()
    r = ops.client.post("/console/login", data={"api_key": lead})
    assert r.status_code == 303 and r.headers["location"] == "/console/operations"
    page = ops.client.get("/console/operations")
    assert page.status_code == 200, page.text
    html = page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'data-testid="claims-1">2<' in html and 'data-testid="claims-2">2<' in html
    assert 'data-testid="satisfaction-2">4.0 / 5 from 1<' in html
    assert "Quick, but the form was long" in html
    assert ops.adjuster_name in html  # the workload table
    assert html.count("<svg") == 3 and "Claims per day, last 30 days" in html
    assert "Low confidence" in html  # reviews by reason
    assert (
        'data-testid="oldest-open"' in html
        and approved[:8] not in html.split('data-testid="oldest-open"')[1][:80]
    )
    assert "<script src" not in html.replace('<script src="/console/static/console.js', "")
    # A lead has no queue: the review pages send them here.
    r = ops.client.get("/console/")
    assert r.status_code == 303 and r.headers["location"] == "/console/operations"


def test_adjusters_do_not_see_the_operations_page(busy) -> None:
    ops, _, _ = busy
    ops.login(ops.adjuster)
    r = ops.client.get("/console/operations")
    assert r.status_code == 403 and "team leads" in r.text.lower()
    assert 'href="/console/operations"' not in ops.client.get("/console/").text


@pytest.mark.slow
def test_the_operations_page_in_chromium(tmp_path: Path, tiny_onnx_model: Path) -> None:
    sync_api = _sync_api()
    services = build_console_services(tmp_path / "data", tiny_onnx_model)
    try:
        _, _, lead = add_user(services, "lead")
        _, _, customer = add_user(services, "customer")
        with serve(create_app(services=services)) as base, httpx.Client(base_url=base, timeout=10) as http:
            from tests.console.test_console_pages import jpeg

            for i in range(3):
                r = http.post(
                    "/v1/claims",
                    data={"tracking_number": f"SF90000000{i}", "declared_value": "300.00", "currency": "CNY"},
                    files=[("photos", ("p.jpg", jpeg(50 + i, base=DAMAGED_BLUE), "image/jpeg"))],
                    headers={"Authorization": f"Bearer {customer}", "Idempotency-Key": f"ops-{i}"},
                )
                assert r.status_code == 202, r.text
            with sync_api.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                    page.set_default_timeout(TIMEOUT_MS)
                    problems = watch(page)
                    page.goto(f"{base}/console/login")
                    page.get_by_label("API key").fill(lead)
                    page.get_by_role("button", name="Sign in").click()
                    page.wait_for_url(f"{base}/console/operations")
                    sync_api.expect(page.get_by_role("heading", level=1)).to_have_text("Operations")
                    sync_api.expect(page.locator('[data-testid="claims-1"]')).to_have_text("3")
                    chart = page.get_by_role("img", name="Claims per day, last 30 days")
                    sync_api.expect(chart).to_be_visible()
                    box = chart.bounding_box()
                    assert box is not None and box["width"] > 300 and box["height"] > 100
                    assert page.locator("svg rect").count() >= 30
                    ARTIFACTS.mkdir(exist_ok=True)
                    shot = ARTIFACTS / "console-operations.png"
                    page.screenshot(path=str(shot), full_page=True)
                    assert shot.stat().st_size > 20_000
                    assert not problems, problems
                finally:
                    browser.close()
    finally:
        services.close()
