"""The adjusters' review console: server-rendered pages (Jinja2) over `services.reviewing`.

Every rule (what the queue holds and in which order, who may take a case, what a decision needs)
lives in `services.reviewing`; the pages here only call it and show its answers and errors.

- `GET/POST /console/login`: paste an API key; adjusters and admins only. The browser gets an opaque
  session token (services.console_sessions: server-side, 12 h, revoked at logout) in an HttpOnly,
  SameSite=Strict cookie (Secure over https) scoped to /console; `POST /console/logout`.
- `GET /console/`: the queue (filters as a GET form; refreshes itself every 30 s).
- `GET /console/cases/{id}`: one case: photos with zoom and the heatmap overlay, the machine's
  assessment, the customer's history, the timeline, notes, and the decision form.
- `POST /console/cases/{id}/take|decision|notes`: post/redirect/get; an error re-renders the case
  page with the API's message in a banner (and the status of the error).
- `GET /console/cases/{id}/photos/{photo_id}[/heatmap]`: the served derivative (never the original)
  and the heatmap layer, for a signed-in adjuster only.

Cross-site requests: the cookie is SameSite=Strict, every POST is refused when the browser says it
does not come from this console (Sec-Fetch-Site same-origin, else an Origin of this host; a missing
or `null` Origin counts as another site), and every state-changing form carries the session's CSRF
token, so a form elsewhere cannot act for an adjuster.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from starlette.concurrency import run_in_threadpool

from api.console import charts
from api.deps import SessionDep
from api.errors import (
    ClaimLaneError,
    Forbidden,
    HttpError,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    status_of,
)
from api.security import authenticate
from claims.deadlines import DeadlineConfig
from claims.lifecycle import ClaimState, IllegalTransition
from claims.money import MoneyError, quantize
from claims.policy import ReasonCode
from models.grades import GRADES
from services import console_sessions, operations, reviewing
from services.context import Services
from services.photos import served_photo_bytes
from storage.claims import photo_positions
from storage.tables import User, utcnow
from storage.users import names_by_id

logger = logging.getLogger("claimlane.console")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))

router = APIRouter(prefix="/console", include_in_schema=False)

COOKIE = "claimlane_console"
COOKIE_MAX_AGE_S = 12 * 3600  # a working day; then paste the key again
CONSOLE_ROLES = ("adjuster", "admin")  # the queue and the cases
OPERATIONS_ROLES = ("lead", "admin")  # the operations page
SIGN_IN_ROLES = ("adjuster", "admin", "lead")
REFRESH_S = 30

ACTIONS = (
    ("approve", "Approve", "Pay the proposed amount"),
    ("adjust", "Adjust amount", "Approve, paying the amount below"),
    ("deny", "Deny", "Refuse the claim (give a reason)"),
    ("request_photos", "Request photos", "Ask the customer for more photos"),
)
VALUE_BANDS = (("under_500", "Under 500"), ("500_2000", "500 – 2,000"), ("over_2000", "Over 2,000"))
STATUSES = (("unassigned", "Unassigned"), ("taken", "Taken"), ("overdue", "Overdue"))
REASON_LABELS: Mapping[str, str] = {
    ReasonCode.LOW_CONFIDENCE: "Low confidence",
    ReasonCode.GRADE_NOT_FAST_LANE: "Grade not auto-paid",
    ReasonCode.VALUE_ABOVE_FAST_LANE_CEILING: "Value over ceiling",
    ReasonCode.CURRENCY_NOT_FAST_LANE: "Currency not auto-paid",
    ReasonCode.PAYOUT_ROUNDS_TO_ZERO: "Payout rounds to zero",
    ReasonCode.CUSTOMER_DECLINED: "Customer declined offer",
    ReasonCode.OFFER_EXPIRED: "Offer expired",
    ReasonCode.PHOTOS_ADDED: "Photos added",
    ReasonCode.MODEL_UNAVAILABLE: "Model unavailable",
    "adjuster_approve": "Adjuster approved",
    "adjuster_adjust": "Adjuster adjusted amount",
    "adjuster_deny": "Adjuster denied",
    "adjuster_request_photos": "Adjuster asked for photos",
}
DONE_MESSAGES = {
    "taken": "You hold this case now.",
    "decided": "Decision recorded.",
    "noted": "Note added.",
}
STATE_LABELS = {
    ClaimState.SUBMITTED: "Submitted",
    ClaimState.ASSESSING: "Assessing",
    ClaimState.OFFERED: "Offered",
    ClaimState.IN_REVIEW: "In review",
    ClaimState.ACCEPTED: "Accepted",
    ClaimState.DECLINED: "Declined",
    ClaimState.EXPIRED: "Expired",
    ClaimState.APPROVED: "Approved",
    ClaimState.DENIED: "Denied",
    ClaimState.NEEDS_PHOTOS: "Photos requested",
    ClaimState.PAYOUT_INSTRUCTED: "Payout instructed",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# --------------------------------------------------------------------------------------------------
# Template helpers


def _static_versions() -> dict[str, str]:
    """Content hashes of the static files, for cache-busting URLs."""
    out = {}
    for path in STATIC_DIR.iterdir():
        if path.is_file():
            out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return out


_VERSIONS = _static_versions()


def _static(name: str) -> str:
    return f"/console/static/{name}?v={_VERSIONS.get(name, '0')}"


def _money(value: Any, currency: str | None) -> str:
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
        if currency:
            amount = quantize(amount, currency)
    except (ArithmeticError, ValueError, MoneyError):
        return f"{value} {currency or ''}".strip()
    whole, _, frac = f"{amount:f}".partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = f"{int(whole.lstrip('-') or 0):,}"
    text = f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"
    return f"{text} {currency}" if currency else text


def _pct(value: Any) -> str:
    if value is None:
        return "—"
    try:
        return f"{float(value) * 100:.0f}%"
    except (TypeError, ValueError):
        return str(value)


def _grade_name(grade: Any) -> str:
    try:
        return GRADES[int(grade)].name
    except (TypeError, ValueError, IndexError):
        return "—"


def _span(seconds: float) -> str:
    seconds = abs(int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def _relative(when: datetime | None, now: datetime) -> str:
    if when is None:
        return ""
    delta = (when - now).total_seconds()
    if abs(delta) < 30:
        return "now"
    return f"in {_span(delta)}" if delta > 0 else f"{_span(delta)} ago"


def _clock(when: datetime | None) -> str:
    return "" if when is None else when.strftime("%Y-%m-%d %H:%M UTC")


def _short_clock(when: datetime | None, now: datetime) -> str:
    if when is None:
        return ""
    return when.strftime("%H:%M") if when.date() == now.date() else when.strftime("%b %d %H:%M")


def _reason_label(code: Any) -> str:
    return REASON_LABELS.get(str(code), str(code).replace("_", " ").capitalize())


def _state_label(state: Any) -> str:
    try:
        return STATE_LABELS[ClaimState(str(state))]
    except ValueError:
        return str(state)


def _detail_pairs(detail: Any) -> list[tuple[str, str]]:
    """An audit event's detail as short "key: value" pairs; lists, maps and long values (model
    outputs per photo) are left out: the photos and the probability bars show those."""
    if not isinstance(detail, Mapping):
        return []
    pairs = []
    for key, value in detail.items():
        if value is None or isinstance(value, (dict, list, tuple)):
            continue
        text = str(value)
        if len(text) > 140:
            text = text[:139] + "…"
        pairs.append((str(key).replace("_", " "), text))
    return pairs


TEMPLATES.env.globals.update(
    static=_static,
    grade_scale=GRADES,
    actions=ACTIONS,
    refresh_s=REFRESH_S,
)
TEMPLATES.env.filters.update(
    money=_money,
    pct=_pct,
    grade_name=_grade_name,
    clock=_clock,
    reason_label=_reason_label,
    state_label=_state_label,
    detail_pairs=_detail_pairs,
)


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    signed_in = getattr(request.state, "signed_in", None)
    context.setdefault("csrf_token", signed_in.csrf_token if signed_in is not None else "")
    now = context.setdefault("now", utcnow())
    context.setdefault("relative", lambda when: _relative(when, now))
    context.setdefault("short_clock", lambda when: _short_clock(when, now))
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------------------------------
# Who is signed in


class LoginRequired(HttpError):
    """No console cookie, or it no longer names an enabled adjuster: go to the login page."""

    status_code = 303
    code = "login_required"


def _safe_next(target: str | None) -> str:
    """Only a console path of this site (never `//evil` or a full URL) is a place to go back to."""
    if not target or not target.startswith("/console") or target.startswith("//"):
        return "/console/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return "/console/"
    return target


def _login_url(next_path: str | None = None) -> str:
    target = _safe_next(next_path)
    return "/console/login" if target == "/console/" else f"/console/login?next={quote(target, safe='/')}"


def _signed_in(request: Request, session: Session) -> console_sessions.SignedIn | None:
    """The console session of the request's cookie, if it is live and its user an adjuster/admin."""
    signed_in = console_sessions.current(session, request.cookies.get(COOKIE), utcnow())
    if signed_in is None or signed_in.user.role not in SIGN_IN_ROLES:
        return None
    return signed_in


def _same_site_only(request: Request) -> None:
    """Refuse a state-changing request unless the browser says it came from this console: its
    Sec-Fetch-Site is same-origin, or (browsers without it) its Origin is this host. A missing or
    opaque (`null`) Origin is treated as another site: every browser sends Origin on a POST, and
    `null` is what sandboxed frames and some redirects send."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    site = request.headers.get("sec-fetch-site", "").lower()
    if site:
        if site != "same-origin":
            raise Forbidden("cross-site requests are refused")
        return
    origin = request.headers.get("origin")
    if not origin or origin == "null" or urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("cross-site requests are refused (no Origin of this console)")


def signed_in_user(request: Request, session: SessionDep) -> User:
    """Anyone signed in to the console (adjusters, admins, team leads), else the login page."""
    _same_site_only(request)
    signed_in = _signed_in(request, session)
    if signed_in is None:
        path = request.url.path
        if request.method == "GET" and request.url.query:
            path = f"{path}?{request.url.query}"
        elif request.method != "GET":
            path = "/console/"
        raise LoginRequired("sign in to the review console", headers={"Location": _login_url(path)})
    request.state.signed_in = signed_in  # its CSRF token goes into every form (_render)
    return signed_in.user


def review_user(request: Request, session: SessionDep) -> User:
    """An adjuster or admin: a team lead is sent to the operations page instead."""
    user = signed_in_user(request, session)
    if user.role not in CONSOLE_ROLES:
        raise GoToOperations("the review queue is for adjusters", headers={"Location": "/console/operations"})
    return user


class GoToOperations(HttpError):
    status_code = 303
    code = "see_operations"


ConsoleUser = Annotated[User, Depends(review_user)]
AnyConsoleUser = Annotated[User, Depends(signed_in_user)]


async def console_form_user(request: Request, user: ConsoleUser) -> User:
    """A signed-in user whose form carries the session's CSRF token (every state-changing form does,
    in addition to the same-site check): a form another site managed to post lacks it."""
    form = await request.form()  # parsed once; the route's own Form fields reuse it
    token = form.get("csrf_token")
    if not console_sessions.csrf_ok(request.state.signed_in, token if isinstance(token, str) else None):
        raise Forbidden(
            "this form did not come from your console session (it may have expired): reload the page "
            "and try again",
            code="csrf_failed",
        )
    return user


ConsoleFormUser = Annotated[User, Depends(console_form_user)]


# --------------------------------------------------------------------------------------------------
# Services


def _services(request: Request) -> Services:
    services = getattr(request.app.state, "services", None)
    if services is None:
        raise ServiceUnavailable("the service is starting up; retry shortly")
    return services


# --------------------------------------------------------------------------------------------------
# Login


@router.get("/login", name="console_login")
def login_page(request: Request, session: SessionDep, next: str | None = None) -> Response:
    if _signed_in(request, session) is not None:
        return _redirect(_safe_next(next))
    bye = request.query_params.get("bye") == "1"
    return _render(request, "login.html", {"next": _safe_next(next), "bye": bye, "user": None})


@router.post("/login", name="console_login_submit")
def login_submit(
    request: Request,
    session: SessionDep,
    api_key: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/console/",
) -> Response:
    _same_site_only(request)
    limiter = request.app.state.rate_limiter
    address = request.client.host if request.client else "unknown"
    try:
        limiter.check("auth_failures", address)  # an address locked out is not even checked
        limiter.hit("logins", address)
    except TooManyRequests as exc:
        return _too_many(request, next, exc)
    key = api_key.strip()
    user = authenticate(session, f"Bearer {key}") if key else None
    if key and user is None:
        try:
            limiter.hit("auth_failures", address)
        except TooManyRequests as exc:
            return _too_many(request, next, exc)
    error = None
    if not key:
        error = "Paste your API key to sign in."
    elif user is None:
        error = "That key is not valid (or it has been disabled). Check it and try again."
    elif user.role not in SIGN_IN_ROLES:
        error = (
            f"This is a {user.role} key. The console is for adjusters, team leads and admins only; "
            "customers follow their claims in the ClaimLane app."
        )
    if error is not None:
        status = 403 if user is not None else 401
        return _render(
            request, "login.html", {"next": _safe_next(next), "error": error, "user": None}, status
        )
    assert user is not None  # no error means a key of a console role
    token = console_sessions.sign_in(session, user, utcnow())
    session.commit()
    target = _safe_next(next)
    if user.role not in CONSOLE_ROLES and target == "/console/":
        target = "/console/operations"  # a team lead's home
    response = _redirect(target)
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE_S,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _too_many(request: Request, next: str, exc: TooManyRequests) -> Response:
    error = f"Too many sign-in attempts from here. Try again in {exc.retry_after} seconds."
    response = _render(request, "login.html", {"next": _safe_next(next), "error": error, "user": None}, 429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@router.post("/logout", name="console_logout")
def logout(request: Request, session: SessionDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    """Revoke the session on the server (a copy of the cookie is worthless from now on) and clear
    the cookie. A session that has already ended just has its cookie cleared."""
    _same_site_only(request)
    signed_in = _signed_in(request, session)
    if signed_in is not None:
        if not console_sessions.csrf_ok(signed_in, csrf_token):
            raise Forbidden("this form did not come from your console session", code="csrf_failed")
        console_sessions.sign_out(session, request.cookies.get(COOKIE), utcnow())
        session.commit()
    response = _redirect("/console/login?bye=1")
    response.delete_cookie(
        COOKIE, path="/console", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


# --------------------------------------------------------------------------------------------------
# The queue


def _choice(value: str | None, allowed: list[str] | tuple[str, ...]) -> str | None:
    value = (value or "").strip()
    return value if value in allowed else None


@router.get("/", name="console_queue")
def queue_page(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    reason: str | None = None,
    value_band: str | None = None,
    status: str | None = None,
) -> Response:
    services = _services(request)
    now = utcnow()
    reasons = [r.value for r in ReasonCode]
    chosen = {
        "reason": _choice(reason, reasons),
        "value_band": _choice(value_band, list(reviewing.VALUE_BANDS)),
        "status": _choice(status, [s for s, _ in STATUSES]),
    }
    ignored = [
        name
        for name, raw in (("reason", reason), ("value band", value_band), ("status", status))
        if raw and chosen[name.replace(" ", "_")] is None
    ]
    filters = reviewing.QueueFilters(**chosen)  # type: ignore[arg-type]  # each value checked above
    items = reviewing.list_queue(session, filters, now, services.deadlines)
    counts = {
        "total": len(items),
        "overdue": sum(1 for i in items if i.sla.state == "overdue"),
        "due_soon": sum(1 for i in items if i.sla.state == "due_soon"),
        "unassigned": sum(1 for i in items if not _held(i)),
    }
    return _render(
        request,
        "queue.html",
        {
            "user": user,
            "now": now,
            "items": items,
            "counts": counts,
            "filters": chosen,
            "filtered": any(chosen.values()),
            "reasons": [(r, _reason_label(r)) for r in reasons],
            "value_bands": VALUE_BANDS,
            "statuses": STATUSES,
            "warning": f"Ignored an unknown {', '.join(ignored)} filter." if ignored else None,
            "held": _held,
        },
    )


def _held(item: reviewing.QueueItem) -> bool:
    """Someone holds the case (`list_queue` and `case_detail` report only live leases)."""
    return item.lease_holder_id is not None


# --------------------------------------------------------------------------------------------------
# A case


def _next_case_id(session: Session, claim_id: str, now: datetime, deadlines: DeadlineConfig) -> str | None:
    """The case after this one in queue order (the first one when this case is not queued)."""
    items = reviewing.list_queue(session, reviewing.QueueFilters(), now, deadlines)
    ids = [i.claim_id for i in items]
    if claim_id in ids:
        after = ids[ids.index(claim_id) + 1 :]
        return after[0] if after else (ids[0] if ids[0] != claim_id else None)
    return ids[0] if ids else None


def _outcome(detail: Any) -> dict[str, Any] | None:
    """What happened to a decided case, for the banner at the top of its page."""
    claim = detail.claim
    state = ClaimState(claim.state)
    if state in (ClaimState.IN_REVIEW, ClaimState.SUBMITTED, ClaimState.ASSESSING):
        return None
    decided = None
    for event in reversed(list(detail.timeline)):
        if event.action == "transition" and str(event.actor).startswith(("adjuster", "admin")):
            decided = event
            break
    headline = ClaimState(decided.to_state) if decided is not None else state
    tone = {
        ClaimState.APPROVED: "good",
        ClaimState.PAYOUT_INSTRUCTED: "good",
        ClaimState.ACCEPTED: "good",
        ClaimState.DENIED: "bad",
    }.get(headline, "info")
    return {
        "headline": headline,
        "state": state,
        "tone": tone,
        "event": decided,
        "payout": claim.payout_amount,
        "paid": state is ClaimState.PAYOUT_INSTRUCTED,
    }


def _people(session: Session, labels: list[str], author_ids: list[int]) -> dict[str, str]:
    """Display names for audit actors ("adjuster:7" -> "alice") and note authors (by id, as str)."""
    ids = set(author_ids)
    for label in labels:
        role, _, number = str(label).partition(":")
        if role in CONSOLE_ROLES and number.isdigit():
            ids.add(int(number))
    names = names_by_id(session, ids)
    out = {}
    for label in labels:
        role, _, number = str(label).partition(":")
        if role in CONSOLE_ROLES and number.isdigit() and int(number) in names:
            out[label] = names[int(number)]
        else:
            out[label] = role  # "customer", "system"
    for author in author_ids:
        out[str(author)] = names.get(author, f"user {author}")
    return out


def _case_context(
    request: Request,
    session: Session,
    user: User,
    claim_id: str,
    *,
    now: datetime | None = None,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    services = _services(request)
    now = now or utcnow()
    deadlines = services.deadlines
    detail = reviewing.case_detail(session, claim_id, now, deadlines, services.policy)
    item = detail.item
    photos = sorted(detail.photos, key=lambda p: p.position)
    form = dict(form or {})
    grades = {}
    for p in photos:
        submitted = form.get(f"grade-{p.id}")
        if submitted is not None:
            grades[p.id] = submitted
        elif getattr(p, "adjuster_grade", None) is not None:
            grades[p.id] = str(p.adjuster_grade)
        else:
            grades[p.id] = "" if p.grade is None else str(p.grade)
    done = request.query_params.get("done")
    outcome = _outcome(detail)
    people = _people(
        session,
        [str(e.actor) for e in detail.timeline],
        [n.author_id for n in detail.notes if getattr(n, "author_id", None) is not None],
    )
    return {
        "user": user,
        "now": now,
        "detail": detail,
        "claim": detail.claim,
        "item": item,
        "photos": photos,
        "has_heatmaps": any(p.heatmap_url for p in photos),
        "held": _held(item),
        "held_by_me": item.lease_holder_id == user.id,
        "in_review": detail.claim.state == ClaimState.IN_REVIEW,
        "outcome": outcome,
        "people": people,
        "next_id": _next_case_id(session, claim_id, now, deadlines),
        "error": error,
        "flash": None if outcome is not None and done == "decided" else DONE_MESSAGES.get(done or ""),
        "form": form,
        "chosen_grades": grades,
        "reason_labels": REASON_LABELS,
    }


def _case_response(
    request: Request,
    session: Session,
    user: User,
    claim_id: str,
    *,
    status_code: int = 200,
    error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> Response:
    try:
        context = _case_context(request, session, user, claim_id, error=error, form=form)
    except NotFound as exc:
        return _render(
            request,
            "error.html",
            {"user": user, "title": "Case not found", "message": exc.message},
            404,
        )
    return _render(request, "case.html", context, status_code)


@router.get("/cases/{claim_id}", name="console_case")
def case_page(claim_id: str, request: Request, user: ConsoleUser, session: SessionDep) -> Response:
    return _case_response(request, session, user, claim_id)


def _error_message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ClaimLaneError):
        return status_of(exc), exc.message
    if isinstance(exc, IllegalTransition):
        return 409, f"This case cannot be changed that way now: {exc}"
    if isinstance(exc, MoneyError):
        return 422, f"Amount: {exc}"
    if isinstance(exc, StaleDataError):
        return 409, "Someone else changed this case at the same moment; reload and try again."
    raise exc


def _name_photos(session: Session, claim_id: str, message: str) -> str:
    """The API's message with photo ids written as "photo 2" (what the adjuster sees on the page)."""
    for photo_id, position in photo_positions(session, claim_id):
        message = message.replace(photo_id, f"photo {position}")
    return message


_ACTION_ERRORS = (ClaimLaneError, IllegalTransition, MoneyError, StaleDataError)


def _act(
    request: Request,
    session: Session,
    user: User,
    claim_id: str,
    step,
    done: str,
    form: Mapping[str, Any] | None = None,
    anchor: str = "",
) -> Response:
    """Run `step(now)` and commit, then redirect back to the case (PRG); on an error, roll back and
    show the case again with the error's message (and its status)."""
    try:
        step(utcnow())
        session.commit()
    except _ACTION_ERRORS as exc:
        session.rollback()
        status, message = _error_message(exc)
        message = _name_photos(session, claim_id, message)
        if status == 404:
            return _render(
                request, "error.html", {"user": user, "title": "Case not found", "message": message}, 404
            )
        return _case_response(request, session, user, claim_id, status_code=status, error=message, form=form)
    return _redirect(f"/console/cases/{quote(claim_id)}?done={done}{anchor}")


@router.post("/cases/{claim_id}/take", name="console_take")
def take(claim_id: str, request: Request, user: ConsoleFormUser, session: SessionDep) -> Response:
    return _act(
        request,
        session,
        user,
        claim_id,
        lambda now: reviewing.take_case(session, claim_id, user, now),
        "taken",
    )


@router.post("/cases/{claim_id}/notes", name="console_note")
def note(
    claim_id: str,
    request: Request,
    user: ConsoleFormUser,
    session: SessionDep,
    text: Annotated[str, Form()] = "",
) -> Response:
    return _act(
        request,
        session,
        user,
        claim_id,
        lambda now: reviewing.add_note(session, claim_id, user, text, now),
        "noted",
        form={"note": text},
        anchor="#notes",
    )


def _parse_grades(form: Mapping[str, Any]) -> dict[str, int] | str:
    grades: dict[str, int] = {}
    for name, value in form.items():
        if not name.startswith("grade-") or str(value).strip() == "":
            continue
        try:
            grades[name.removeprefix("grade-")] = int(str(value))
        except ValueError:
            return f"Grade for photo {name.removeprefix('grade-')} must be 0 to 3, got {value!r}."
    return grades


@router.post("/cases/{claim_id}/decision", name="console_decide")
async def decide(claim_id: str, request: Request, user: ConsoleFormUser, session: SessionDep) -> Response:
    form = {k: v for k, v in (await request.form()).multi_items() if isinstance(v, str)}
    return await run_in_threadpool(_decide, request, session, user, claim_id, form)


def _decide(request: Request, session: Session, user: User, claim_id: str, form: dict[str, str]) -> Response:
    services = _services(request)
    action = form.get("action", "").strip()
    amount = form.get("amount", "").strip() or None
    reason = form.get("reason", "").strip() or None
    grades = _parse_grades(form)
    if not action:
        return _case_response(
            request, session, user, claim_id, status_code=422, error="Choose an action.", form=form
        )
    if isinstance(grades, str):
        return _case_response(request, session, user, claim_id, status_code=422, error=grades, form=form)

    def step(now: datetime) -> None:
        reviewing.decide_case(
            session,
            claim_id,
            user,
            action,
            amount=amount,
            reason=reason,
            grades=grades,
            now=now,
            policy=services.policy,
        )

    return _act(request, session, user, claim_id, step, "decided", form=form)


# --------------------------------------------------------------------------------------------------
# Photos


def _image(request: Request, load: Callable[[], bytes], media_type: str, etag: str) -> Response:
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "private, max-age=3600"})
    data = load()
    return Response(
        data,
        media_type=media_type,
        headers={
            "ETag": etag,
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/cases/{claim_id}/photos/{photo_id}", name="console_photo")
def photo(claim_id: str, photo_id: str, request: Request, user: ConsoleUser, session: SessionDep) -> Response:
    found = reviewing.case_photo(session, claim_id, photo_id)
    services = _services(request)
    # Never the original upload: it may carry the customer's GPS position.
    return _image(
        request,
        lambda: served_photo_bytes(services.store, found, services.settings.derivative_max_side),
        "image/jpeg",
        f'"{found.sha256}"',
    )


@router.get("/cases/{claim_id}/photos/{photo_id}/heatmap", name="console_heatmap")
def heatmap(
    claim_id: str, photo_id: str, request: Request, user: ConsoleUser, session: SessionDep
) -> Response:
    found = reviewing.case_photo(session, claim_id, photo_id)
    key = found.heatmap_key
    if not key:
        raise NotFound("no heatmap for this photo")
    etag = f'"{hashlib.sha256(key.encode()).hexdigest()[:32]}"'
    store = _services(request).store
    return _image(
        request, lambda: reviewing.heatmap_png(session, store, claim_id, photo_id), "image/png", etag
    )


# --------------------------------------------------------------------------------------------------
# Operations (team leads and admins)


def _compliance(clock: operations.Clock) -> str:
    rate = clock.compliance
    return "—" if rate is None else f"{rate * 100:.0f}%"


@router.get("/operations", name="console_operations")
def operations_page(request: Request, user: AnyConsoleUser) -> Response:
    """Today and the last 30 days: claims, automation, payouts, deadlines per clock, the oldest
    open case, reviews by reason, adjusters' workload, fast-lane offers a person later confirmed or
    overturned, and satisfaction, with the plots drawn as inline SVG."""
    if user.role not in OPERATIONS_ROLES:
        return _render(
            request,
            "error.html",
            {
                "user": user,
                "title": "Team leads only",
                "message": "The operations page is for team leads and admins.",
            },
            403,
        )
    overview = operations.overview(_services(request).sessions)
    month = overview.month
    return _render(
        request,
        "operations.html",
        {
            "user": user,
            "now": overview.now,
            "o": overview,
            "periods": (overview.today, month),
            "compliance": _compliance,
            "daily_chart": charts.daily_claims(month.daily),
            "reasons_chart": charts.bars(
                [(_reason_label(r), n) for r, n in month.reviews_by_reason],
                title="Reviews by reason, 30 days",
            ),
            "ratings_chart": charts.bars(
                [(f"{r} ★", month.ratings.get(r, 0)) for r in range(5, 0, -1)], title="Ratings, 30 days"
            ),
        },
    )
