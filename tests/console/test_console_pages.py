"""The review console's pages without a browser (TestClient): sign-in, redirects, rendering, the
post/redirect/get actions and their error banners, and the photo routes.

Embedded mode on a temporary folder (SQLite, local store, in-process dispatcher, the tiny ONNX
model) with the shipped payout policy made unable to trust any grade, so every claim goes to review.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from api.console.routes import COOKIE
from api.main import create_app
from api.security import create_user
from claims.policy import DEFAULT_POLICY_FILE, parse_policy
from config.settings import Settings
from services.context import Services, build_services
from storage.tables import ConsoleSession, Photo, User, utcnow

SHIPPED_POLICY = Path(DEFAULT_POLICY_FILE).parent / "2026-11-v1.toml"


def review_everything_policy():
    """The shipped policy, but no grade is ever trusted enough for an instant offer."""
    return dataclasses.replace(parse_policy(SHIPPED_POLICY.read_text()), confidence_threshold=Decimal("1"))


# The tiny test model grades a photo by its mean colour: strong blue reads as structural damage
# (grade 2: the policy pays half the declared value), pale yellow as cosmetic (grade 1: pays nothing).
DAMAGED_BLUE = (40, 10, 215)
COSMETIC_YELLOW = (215, 220, 125)


def jpeg(seed: int, size: tuple[int, int] = (160, 120), base: tuple[int, int, int] | None = None) -> bytes:
    """A noisy JPEG; different seeds give different bytes. `base` fixes its mean colour."""
    rng = np.random.default_rng(seed)
    mean = np.array(base) if base is not None else rng.integers(40, 220, size=3)
    noise = 12 if base is not None else 25
    pixels = np.clip(mean + rng.normal(0, noise, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class ConsoleClient(TestClient):
    """A TestClient that, like the console's own forms, sends the session's CSRF token with every
    POST to the console (`csrf=False` sends none, to test the refusal)."""

    def __init__(self, app: FastAPI, services: Services, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.services = services

    def csrf_token(self) -> str | None:
        token = self.cookies.get(COOKIE)
        if not token:
            return None
        with self.services.sessions() as session:
            row = session.get(ConsoleSession, hashlib.sha256(token.encode()).hexdigest())
            return None if row is None else row.csrf_token

    def post(self, url: Any, *args: Any, csrf: bool = True, **kwargs: Any):  # type: ignore[override]
        token = self.csrf_token() if csrf and str(url).startswith("/console/") else None
        if token is not None and str(url) != "/console/login":
            kwargs["data"] = {**(kwargs.get("data") or {}), "csrf_token": token}
        return super().post(url, *args, **kwargs)


def build_console_services(data_dir: Path, model_path: Path) -> Services:
    services = build_services(Settings(data_dir=data_dir, model_path=model_path))
    services.policy = review_everything_policy()
    return services


def add_user(services: Services, role: str) -> tuple[int, str, str]:
    """(id, name, key) of a new user."""
    with services.sessions() as session:
        user, key = create_user(session, f"{role}-{uuid.uuid4().hex[:6]}", role)
        session.commit()
        return user.id, user.name, key


@dataclass
class Console:
    client: TestClient
    app: FastAPI
    services: Services
    adjuster: str
    adjuster_name: str
    other_adjuster: str
    customer: str

    def file_claim(
        self,
        photos: int = 2,
        tracking: str | None = None,
        value: str = "800.00",
        base: tuple[int, int, int] | None = None,
    ) -> str:
        """A claim filed over the API and assessed into review; its id. `base`: the photos' mean
        colour (DAMAGED_BLUE: the model grades them 2, so the policy proposes a payout)."""
        files = [
            ("photos", (f"p{i}.jpg", jpeg(i + 10 * photos, base=base), "image/jpeg")) for i in range(photos)
        ]
        r = self.client.post(
            "/v1/claims",
            data={
                "tracking_number": tracking or f"SF{uuid.uuid4().hex[:10].upper()}",
                "declared_value": value,
                "currency": "CNY",
                "description": "Box crushed on one corner",
            },
            files=files,
            headers={"Authorization": f"Bearer {self.customer}", "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 202, r.text
        assert self.app.state.dispatcher.drain(30), "assessment did not finish"
        claim_id = r.json()["id"]
        assert self.claim_state(claim_id) == "in_review"
        return claim_id

    def claim_state(self, claim_id: str) -> str:
        r = self.client.get(f"/v1/claims/{claim_id}", headers={"Authorization": f"Bearer {self.customer}"})
        assert r.status_code == 200, r.text
        return r.json()["status"]

    def login(self, key: str) -> None:
        self.client.cookies.clear()
        r = self.client.post("/console/login", data={"api_key": key})
        assert r.status_code == 303, r.text
        assert COOKIE in self.client.cookies

    def photos(self, claim_id: str) -> list[Photo]:
        with self.services.sessions() as session:
            return list(
                session.scalars(select(Photo).where(Photo.claim_id == claim_id).order_by(Photo.position))
            )

    def model_grades(self, claim_id: str) -> dict[str, str]:
        return {f"grade-{p.id}": str(p.grade if p.grade is not None else 0) for p in self.photos(claim_id)}


@pytest.fixture
def console(tmp_path: Path, tiny_onnx_model: Path) -> Iterator[Console]:
    services = build_console_services(tmp_path / "data", tiny_onnx_model)
    app = create_app(services=services)
    try:
        # A browser sends the page's Origin with every form it posts.
        with ConsoleClient(
            app, services, follow_redirects=False, headers={"Origin": "http://testserver"}
        ) as client:
            _, name, adjuster = add_user(services, "adjuster")
            yield Console(
                client=client,
                app=app,
                services=services,
                adjuster=adjuster,
                adjuster_name=name,
                other_adjuster=add_user(services, "adjuster")[2],
                customer=add_user(services, "customer")[2],
            )
    finally:
        services.close()


def text_of(response) -> str:
    """The page's text with tags stripped and whitespace collapsed (for "does it say X" checks)."""
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", response.text, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def banner(response) -> str:
    match = re.search(r'<div class="banner banner-error"[^>]*>(.*?)</div>', response.text, flags=re.S)
    assert match, f"no error banner in the page (status {response.status_code})"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


# --------------------------------------------------------------------------------------------------
# Signing in


def test_login_page_renders_a_labelled_key_field(console: Console) -> None:
    r = console.client.get("/console/login")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<label for="api_key">' in r.text and 'id="api_key"' in r.text and 'type="password"' in r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("key", "status", "says"),
    [
        ("customer", 403, "for adjusters, team leads and admins only"),
        ("cl_0123abcd_" + "x" * 32, 401, "not valid"),
        ("not a key at all", 401, "not valid"),
        ("", 401, "Paste your API key"),
    ],
)
def test_login_refuses_customers_and_bad_keys(console: Console, key: str, status: int, says: str) -> None:
    key = console.customer if key == "customer" else key
    r = console.client.post("/console/login", data={"api_key": key})
    assert r.status_code == status
    assert says in banner(r)
    assert "set-cookie" not in r.headers
    assert COOKIE not in console.client.cookies


def test_login_sets_a_strict_httponly_cookie_and_logout_clears_it(console: Console) -> None:
    r = console.client.post(
        "/console/login", data={"api_key": console.adjuster, "next": "/console/?status=taken"}
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/console/?status=taken"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    assert console.client.get("/console/").status_code == 200
    # Signed in already: the login page sends you on.
    assert console.client.get("/console/login").status_code == 303

    r = console.client.post("/console/logout")
    assert r.status_code == 303 and r.headers["location"] == "/console/login?bye=1"
    assert COOKIE not in console.client.cookies
    assert console.client.get("/console/").status_code == 303


def test_admins_may_sign_in_and_a_disabled_key_stops_working(console: Console) -> None:
    admin_id, _, admin_key = add_user(console.services, "admin")
    console.login(admin_key)
    assert console.client.get("/console/").status_code == 200
    with console.services.sessions() as session:
        session.get(User, admin_id).disabled_at = utcnow()
        session.commit()
    assert console.client.get("/console/").status_code == 303  # the cookie's key no longer opens it
    r = console.client.post("/console/login", data={"api_key": admin_key})
    assert r.status_code == 401 and "disabled" in banner(r)


def test_login_cookie_is_secure_over_https(console: Console) -> None:
    with TestClient(
        console.app,
        base_url="https://testserver",
        follow_redirects=False,
        headers={"Origin": "https://testserver"},
    ) as client:
        r = client.post("/console/login", data={"api_key": console.adjuster})
    assert r.status_code == 303
    assert "Secure" in r.headers["set-cookie"]


def test_login_never_redirects_off_the_console(console: Console) -> None:
    for target in ("https://evil.example/", "//evil.example/console", "/v1/claims", "/console\\@evil"):
        console.client.cookies.clear()
        r = console.client.post("/console/login", data={"api_key": console.adjuster, "next": target})
        assert r.status_code == 303
        assert r.headers["location"] == "/console/", target


def test_pages_redirect_to_login_without_the_cookie(console: Console) -> None:
    claim_id = console.file_claim(photos=1)
    photo_id = console.photos(claim_id)[0].id
    for path in (
        "/console/",
        "/console/?reason=low_confidence",
        f"/console/cases/{claim_id}",
        f"/console/cases/{claim_id}/photos/{photo_id}",
    ):
        r = console.client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/console/login"), path
    assert console.client.get("/console/?status=taken").headers["location"] == (
        "/console/login?next=/console/%3Fstatus%3Dtaken"
    )
    for path in ("take", "decision", "notes"):
        r = console.client.post(f"/console/cases/{claim_id}/{path}", data={"text": "x"})
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login"), path
    # A customer's key in the cookie does not open the console either.
    console.client.cookies.set(COOKIE, console.customer, path="/console")
    assert console.client.get("/console/").status_code == 303
    assert console.claim_state(claim_id) == "in_review"


# --------------------------------------------------------------------------------------------------
# The queue and a case


def test_queue_lists_claims_in_review_with_filters(console: Console) -> None:
    claim_id = console.file_claim(photos=2, tracking="SFQUEUE0001", value="1250.50")
    console.login(console.adjuster)
    r = console.client.get("/console/")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    page = r.text
    assert f'data-href="/console/cases/{claim_id}"' in page
    assert "SFQUEUE0001" in page and "1,250.50 CNY" in page
    assert 'class="sla sla-' in page  # the deadline badge
    assert "Low confidence" in text_of(r)  # the policy's reason, as a chip
    for name in ("reason", "value_band", "status"):
        assert f'<select name="{name}">' in page
    assert 'data-refresh="30"' in page and 'http-equiv="refresh" content="30"' in page

    r = console.client.get("/console/", params={"value_band": "under_500"})
    assert r.status_code == 200 and "SFQUEUE0001" not in r.text and "No case matches" in r.text
    r = console.client.get("/console/", params={"value_band": "500_2000", "reason": "low_confidence"})
    assert "SFQUEUE0001" in r.text
    r = console.client.get("/console/", params={"status": "bogus"})
    assert r.status_code == 200 and "Ignored an unknown status filter" in r.text and "SFQUEUE0001" in r.text


def test_case_page_shows_photos_model_output_and_the_decision_form(console: Console) -> None:
    claim_id = console.file_claim(photos=2, tracking="SFCASE00001")
    photos = console.photos(claim_id)
    console.login(console.adjuster)
    r = console.client.get(f"/console/cases/{claim_id}")
    assert r.status_code == 200, r.text
    page, words = r.text, text_of(r)
    assert "SFCASE00001" in page
    for p in photos:
        assert f'src="/console/cases/{claim_id}/photos/{p.id}"' in page
        # The grade selector, prefilled with the model's grade.
        select_html = re.search(rf'<select name="grade-{p.id}".*?</select>', page, flags=re.S).group(0)
        assert f'<option value="{p.grade}" selected>' in select_html
        assert 'form="decision-form"' in select_html
    assert page.count("<meter") >= 8  # 4 grade probabilities per photo
    assert 'id="heat-toggle"' in page and "no heatmap for this model" in page
    for action in ("approve", "adjust", "deny", "request_photos"):
        assert f'name="action" value="{action}"' in page
    assert 'name="amount"' in page and 'name="reason"' in page
    assert 'id="take-button"' in page and 'action="/console/cases/' + claim_id + '/take"' in page
    assert "Why it is here" in words and "Low confidence" in words
    assert "Machine proposes" in words
    assert "Customer history" in words and "First claim from this customer" in words
    assert "Timeline" in words and "Submitted" in words and "In review" in words
    assert 'name="text"' in page  # the note form
    assert "Keyboard shortcuts" in words
    assert 'id="next-case"' not in page  # no other case waiting


def test_repeat_claimant_is_marked_and_their_history_listed(console: Console) -> None:
    first = console.file_claim(photos=1, tracking="SFHIST00001", value="120.00")
    second = console.file_claim(photos=1, tracking="SFHIST00002")
    console.login(console.adjuster)
    queue = console.client.get("/console/").text
    assert queue.count('class="watch"') == 2  # each is the other's prior claim
    page = console.client.get(f"/console/cases/{second}")
    history = re.search(
        r'<section class="panel" aria-labelledby="history-title">.*?</section>', page.text, re.S
    )
    assert "⚑ watch" in history.group(0)
    assert f'href="/console/cases/{first}">SFHIST00001</a>' in history.group(0)
    assert "120.00 CNY" in history.group(0)


def test_a_reused_photo_is_shown_beside_the_earlier_claims(console: Console) -> None:
    first = console.file_claim(photos=1)  # the same photo (jpeg(10)) twice, on two parcels
    second = console.file_claim(photos=1)
    console.login(console.adjuster)
    page = console.client.get(f"/console/cases/{second}").text
    section = re.search(r'<section class="panel" aria-labelledby="integrity-title".*?</section>', page, re.S)
    assert section is not None
    html = section.group(0)
    assert "<code>photo_reused</code>" in html and "<code>shipment_unverified</code>" in html
    assert f'href="/console/cases/{first}"' in html
    assert "0 of 64 hash bits differ: the same image" in html
    [mine] = console.photos(second)
    [theirs] = console.photos(first)
    for src in (f"/console/cases/{second}/photos/{mine.id}", f"/console/cases/{first}/photos/{theirs.id}"):
        assert f'src="{src}"' in html
        assert console.client.get(src).status_code == 200


def test_unknown_case_is_a_404_page(console: Console) -> None:
    console.login(console.adjuster)
    r = console.client.get(f"/console/cases/{uuid.uuid4()}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "Case not found" in r.text


def test_next_case_follows_queue_order(console: Console) -> None:
    first = console.file_claim(photos=1)
    second = console.file_claim(photos=1)
    console.login(console.adjuster)
    queue_order = re.findall(r'data-href="/console/cases/([0-9a-f-]+)"', console.client.get("/console/").text)
    assert sorted(queue_order) == sorted([first, second])
    r = console.client.get(f"/console/cases/{queue_order[0]}")
    assert f'id="next-case" href="/console/cases/{queue_order[1]}"' in r.text


# --------------------------------------------------------------------------------------------------
# Actions: post/redirect/get, errors in a banner


def test_take_then_approve_redirects_back_and_the_customer_sees_it(console: Console) -> None:
    claim_id = console.file_claim(photos=2, base=DAMAGED_BLUE, value="800.00")
    console.login(console.adjuster)
    r = console.client.post(f"/console/cases/{claim_id}/take")
    assert r.status_code == 303 and r.headers["location"] == f"/console/cases/{claim_id}?done=taken"
    page = console.client.get(r.headers["location"])
    assert "You hold this case" in page.text and 'id="take-button"' not in page.text
    taken = console.client.get("/console/", params={"status": "taken"}).text
    assert f'data-href="/console/cases/{claim_id}"' in taken and re.search(
        r'<span class="holder holder-me"[^>]*>You</span>', taken
    )
    assert claim_id not in console.client.get("/console/", params={"status": "unassigned"}).text

    grades = {name: "2" for name in console.model_grades(claim_id)}
    r = console.client.post(
        f"/console/cases/{claim_id}/decision", data={"action": "approve", "reason": "", **grades}
    )
    assert r.status_code == 303, banner(r)
    assert r.headers["location"] == f"/console/cases/{claim_id}?done=decided"
    page = console.client.get(r.headers["location"])
    assert page.status_code == 200
    assert 'id="outcome"' in page.text and 'id="decision-form"' not in page.text
    outcome = re.search(r'<div class="banner outcome[^>]*>(.*?)</div>', page.text, flags=re.S).group(1)
    assert "Approved" in outcome and console.adjuster_name in outcome and "400.00 CNY" in outcome
    for name in grades:  # the adjuster's grades now show, read-only
        assert re.search(
            rf'<select name="{name}"[^>]*disabled.*?<option value="2" selected>', page.text, re.S
        )
    view = console.client.get(
        f"/v1/claims/{claim_id}", headers={"Authorization": f"Bearer {console.customer}"}
    ).json()
    assert view["status"] in ("approved", "payout_instructed")
    assert view["payout_amount"] == "400.00"


def test_approve_is_only_offered_when_the_policy_pays_something(console: Console) -> None:
    claim_id = console.file_claim(photos=1, base=COSMETIC_YELLOW)
    console.login(console.adjuster)
    console.client.post(f"/console/cases/{claim_id}/take")
    page = console.client.get(f"/console/cases/{claim_id}").text
    assert re.search(r'name="action" value="approve"[^>]*disabled', page)
    assert "The policy pays nothing for the model’s grade" in html.unescape(page)
    # Sent anyway (a stale page): the API's refusal shows in the banner.
    r = console.client.post(
        f"/console/cases/{claim_id}/decision", data={"action": "approve", **console.model_grades(claim_id)}
    )
    assert r.status_code == 422 and "use adjust" in banner(r)
    # Adjust pays what the adjuster says, with a reason.
    r = console.client.post(
        f"/console/cases/{claim_id}/decision",
        data={
            "action": "adjust",
            "amount": "120",
            "reason": "Dent; item works",
            **console.model_grades(claim_id),
        },
    )
    assert r.status_code == 303, banner(r)
    view = console.client.get(
        f"/v1/claims/{claim_id}", headers={"Authorization": f"Bearer {console.customer}"}
    ).json()
    assert view["payout_amount"] == "120.00"


def test_decision_errors_show_the_apis_message_not_a_500(console: Console) -> None:
    claim_id = console.file_claim(photos=2)
    console.login(console.adjuster)
    console.client.post(f"/console/cases/{claim_id}/take")

    # No grades at all.
    r = console.client.post(f"/console/cases/{claim_id}/decision", data={"action": "deny", "reason": "x"})
    assert r.status_code == 422
    assert "grade" in banner(r) and "photo 1, photo 2" in banner(r)
    assert not any(p.id in banner(r) for p in console.photos(claim_id))
    assert 'id="decision-form"' in r.text  # the form is still there to fix and resend

    # No action chosen; what was typed is kept.
    r = console.client.post(
        f"/console/cases/{claim_id}/decision",
        data={"reason": "looks fine", **console.model_grades(claim_id)},
    )
    assert r.status_code == 422 and "Choose an action" in banner(r)
    assert "looks fine</textarea>" in r.text

    # A grade that is not a number.
    grades = console.model_grades(claim_id)
    grades[next(iter(grades))] = "bad"
    r = console.client.post(f"/console/cases/{claim_id}/decision", data={"action": "approve", **grades})
    assert r.status_code == 422 and "must be 0 to 3" in banner(r)

    # An amount that is not money.
    r = console.client.post(
        f"/console/cases/{claim_id}/decision",
        data={"action": "adjust", "amount": "lots", "reason": "partial", **console.model_grades(claim_id)},
    )
    assert 400 <= r.status_code < 500, r.text
    assert banner(r)
    assert console.claim_state(claim_id) == "in_review"


def test_a_case_someone_else_holds_cannot_be_taken_or_decided(console: Console) -> None:
    claim_id = console.file_claim(photos=1)
    console.login(console.adjuster)
    assert console.client.post(f"/console/cases/{claim_id}/take").status_code == 303

    console.login(console.other_adjuster)
    page = console.client.get(f"/console/cases/{claim_id}")
    assert "Held by" in page.text and console.adjuster_name in page.text
    r = console.client.post(f"/console/cases/{claim_id}/take")
    assert r.status_code == 409 and banner(r)
    r = console.client.post(
        f"/console/cases/{claim_id}/decision", data={"action": "approve", **console.model_grades(claim_id)}
    )
    assert r.status_code == 409 and banner(r)
    assert console.claim_state(claim_id) == "in_review"


def test_notes_are_added_and_escaped(console: Console) -> None:
    claim_id = console.file_claim(photos=1)
    console.login(console.adjuster)
    r = console.client.post(
        f"/console/cases/{claim_id}/notes", data={"text": "Called <b>courier</b> & shipper"}
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?done=noted#notes")
    page = console.client.get(f"/console/cases/{claim_id}").text
    assert "Called &lt;b&gt;courier&lt;/b&gt; &amp; shipper" in page

    r = console.client.post(f"/console/cases/{claim_id}/notes", data={"text": "   "})
    assert r.status_code == 422 and banner(r)


def test_cross_site_posts_are_refused(console: Console) -> None:
    claim_id = console.file_claim(photos=1)
    console.login(console.adjuster)
    r = console.client.post(f"/console/cases/{claim_id}/take", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = console.client.post(f"/console/cases/{claim_id}/take", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    for opaque in ({"Origin": "null"}, {"Origin": ""}, {"Sec-Fetch-Site": "same-site"}):
        assert console.client.post(f"/console/cases/{claim_id}/take", headers=opaque).status_code == 403
    del console.client.headers["Origin"]  # no Origin at all (a non-browser, or a stripped header)
    assert console.client.post(f"/console/cases/{claim_id}/take").status_code == 403
    console.client.headers["Origin"] = "http://testserver"
    page = console.client.get(f"/console/cases/{claim_id}")
    assert 'id="take-button"' in page.text  # nobody took it
    ok = console.client.post(f"/console/cases/{claim_id}/take", headers={"Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 303  # this console's own form


def test_a_form_without_the_session_csrf_token_is_refused(console: Console) -> None:
    claim_id = console.file_claim(photos=1)
    console.login(console.adjuster)
    page = console.client.get(f"/console/cases/{claim_id}")
    token = console.client.csrf_token()
    assert token and f'name="csrf_token" value="{token}"' in page.text  # every form carries it
    assert console.client.post(f"/console/cases/{claim_id}/take", csrf=False).status_code == 403
    r = console.client.post(f"/console/cases/{claim_id}/take", csrf=False, data={"csrf_token": "guess"})
    assert r.status_code == 403 and "did not come from your console session" in text_of(r)
    r = console.client.post(
        f"/console/cases/{claim_id}/notes", csrf=False, data={"text": "x", "csrf_token": token + "x"}
    )
    assert r.status_code == 403
    assert 'id="take-button"' in console.client.get(f"/console/cases/{claim_id}").text  # nothing done
    assert console.client.post(f"/console/cases/{claim_id}/take").status_code == 303


def test_the_cookie_is_an_opaque_session_that_logout_revokes_on_the_server(console: Console) -> None:
    console.login(console.adjuster)
    stolen = console.client.cookies[COOKIE]
    assert stolen != console.adjuster and not stolen.startswith("cl_")  # never the API key
    assert console.client.post("/console/logout").status_code == 303
    with ConsoleClient(console.app, console.services, follow_redirects=False) as other:
        other.cookies.set(COOKIE, stolen, path="/console")
        assert other.get("/console/").status_code == 303  # the copied cookie opens nothing now


def test_a_rotated_key_ends_console_sessions_and_sessions_expire(console: Console) -> None:
    from api.security import rotate_key

    user_id, name, key = add_user(console.services, "adjuster")
    console.login(key)
    assert console.client.get("/console/").status_code == 200
    with console.services.sessions() as session:
        rotate_key(session, name)
        session.commit()
    assert console.client.get("/console/").status_code == 303
    _, _, fresh = add_user(console.services, "adjuster")
    console.login(fresh)
    with console.services.sessions() as session:
        for row in session.scalars(select(ConsoleSession).where(ConsoleSession.revoked_at.is_(None))):
            row.expires_at = utcnow()
        session.commit()
    assert console.client.get("/console/").status_code == 303


# --------------------------------------------------------------------------------------------------
# Photos


def test_photo_route_serves_the_derivative_to_adjusters_only(console: Console) -> None:
    claim_id = console.file_claim(photos=2)
    photo = console.photos(claim_id)[0]
    url = f"/console/cases/{claim_id}/photos/{photo.id}"
    assert console.client.get(url).status_code == 303  # not signed in

    console.client.cookies.set(COOKIE, console.customer, path="/console")
    assert console.client.get(url).status_code == 303  # a customer's key is no console key

    console.login(console.adjuster)
    r = console.client.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    # Made on first request and kept; the pixels of the JPEG, without any metadata.
    assert r.content == console.services.store.get(photo.derivative_key)
    assert not Image.open(io.BytesIO(r.content)).getexif()
    assert "private" in r.headers["cache-control"]
    assert console.client.get(url, headers={"If-None-Match": r.headers["etag"]}).status_code == 304

    # The tiny model draws no heatmap.
    assert console.client.get(f"{url}/heatmap").status_code == 404
    # A photo of another claim, or an unknown photo, is not found under this claim.
    other = console.file_claim(photos=1)
    assert console.client.get(f"/console/cases/{other}/photos/{photo.id}").status_code == 404
    assert console.client.get(f"/console/cases/{claim_id}/photos/{uuid.uuid4()}").status_code == 404


def test_heatmap_is_served_and_overlaid_when_the_photo_has_one(console: Console) -> None:
    from models.heatmaps import render_heatmap

    claim_id = console.file_claim(photos=2)
    photo = console.photos(claim_id)[0]
    layer = render_heatmap(np.eye(7, dtype=np.float32), (photo.width, photo.height))
    console.services.store.put(f"heatmaps/test/{photo.id}.png", layer, "image/png")
    with console.services.sessions() as session:
        session.get(Photo, photo.id).heatmap_key = f"heatmaps/test/{photo.id}.png"
        session.commit()

    console.login(console.adjuster)
    heat_url = f"/console/cases/{claim_id}/photos/{photo.id}/heatmap"
    page = console.client.get(f"/console/cases/{claim_id}").text
    assert f'src="{heat_url}"' in page
    r = console.client.get(heat_url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == layer
