"""The ClaimLane HTTP service.

`create_app()` builds the FastAPI application; nothing connects until the lifespan starts, which
builds `Services` (database, object store, policy, model) and the task dispatcher unless they are
injected (tests inject them), warms the model, and shuts the dispatcher down at exit.

Run it with ``claimlane serve`` or ``uvicorn api.main:create_app --factory``. The module-level
`app` reads its settings from the environment when imported but connects to nothing either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version

import starlette.formparsers
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import console, uploads
from api.errors import error_response, install_error_handlers
from api.observability import RequestMetricsMiddleware
from api.ratelimit import RateLimiter
from api.routers import admin, claims, health, metrics, payouts, review, shipments, webhooks
from config.runtime import keep_freed_memory
from config.settings import Settings
from services.context import Services, build_services
from services.waiting import LocalWakeups
from services.webhooks import Deliverer
from workers.decisions import DecisionListener
from workers.dispatch import Dispatcher, make_dispatcher
from workers.tasks import requeue_stale_claims

logger = logging.getLogger("claimlane.api")

try:
    __version__ = _package_version("claimlane")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

DESCRIPTION = """\
Automated parcel-damage claims. The mobile app files a claim with photos of the damaged parcel;
a CNN grades the damage and the payout policy either makes an instant offer or sends the claim to a
human adjuster. The machine may approve; it never denies.

Authenticate with an API key: `Authorization: Bearer cl_<prefix>_<secret>`.
Every error has the shape `{"error": {"code", "message", "details"}}`. Money is always a decimal
string. `POST /v1/claims` requires an `Idempotency-Key` header; retries with the same key and the
same request get the first response.
"""

SLACK_BYTES = 1024 * 1024  # multipart overhead and the text fields, on top of the photos


def max_request_bytes(settings: Settings) -> int:
    return settings.max_photos * settings.max_photo_bytes + SLACK_BYTES


class UrlTextMiddleware:
    """422 for a URL whose path or query holds a NUL character (raw or `%00`), before any route or
    query sees it: PostgreSQL refuses NUL in text, so it would otherwise surface as a 500 there (and
    be stored on SQLite). No valid id, version or filter contains one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            query = scope.get("query_string", b"").lower()
            if "\x00" in path or b"%00" in query or b"\x00" in query:
                response = error_response(
                    422, "invalid_text", "the URL contains a NUL character, which no id or filter may hold"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """413 for a request body larger than any valid claim could be (`max_request_bytes`).

    A declared Content-Length over the limit is refused before a byte is read; a body without one
    (chunked) is counted as it streams and refused as soon as it passes the limit, so an upload is
    never spooled to disk beyond it. Per-photo limits are checked by the claims route.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit = max_request_bytes(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > self.limit:
            response = error_response(
                413,
                "payload_too_large",
                f"request body of {declared} bytes is over the limit of {self.limit} bytes",
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0
        limit = self.limit

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, f"request body is over the limit of {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


# Uploaded photos up to this size stay in memory while a request is parsed, instead of going to a
# temporary file and being read back (Starlette's default is 1 MiB; a phone photo is 3-5 MB), kept as
# the pieces that arrived and joined once (api.uploads). Larger ones still spill to disk, so memory
# per request stays bounded.
UPLOAD_SPOOL_BYTES = 8 * 1024 * 1024
uploads.install(UPLOAD_SPOOL_BYTES)


def _decode_form_text(src: bytes | bytearray, codec: str) -> str:
    """Form field values and file names as UTF-8, each undecodable byte as U+FFFD. Starlette would
    decode a field that is not valid UTF-8 as Latin-1 and so store mojibake silently; with the
    replacement character in it, free text is refused with a 422 (services.claims.INVALID_UTF8),
    and nothing unencodable can reach a response or the database."""
    try:
        return bytes(src).decode(codec, errors="replace")
    except LookupError:  # a charset Python does not know: UTF-8, like every phone sends
        return bytes(src).decode("utf-8", errors="replace")


starlette.formparsers._user_safe_decode = _decode_form_text


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    dispatcher: Dispatcher | None = None,
) -> FastAPI:
    """The application. Injected `services`/`dispatcher` are used as they are and left open at exit
    (their owner closes them); otherwise the lifespan builds both and closes them at exit."""
    if services is not None:
        settings = services.settings
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keep_freed_memory(settings.malloc_keep_mib * 1024 * 1024)  # this server process's allocator
        svc = services if services is not None else await run_in_threadpool(build_services, settings)
        disp = dispatcher if dispatcher is not None else make_dispatcher(svc)
        app.state.services = svc
        app.state.dispatcher = disp
        try:
            model = await run_in_threadpool(svc.model)
            logger.info("damage model %s ready", getattr(model, "version", "?"))
        except Exception:
            # Serve anyway: /readyz reports the model; meanwhile assessments send claims to a
            # person with reason model_unavailable (never a denial).
            logger.exception("the damage model could not be loaded; /readyz will report it")
        if dispatcher is None and settings.task_runner == "inprocess":
            # In-process work dies with its process: claims a previous run left in submitted or
            # assessing are picked up again now (Celery deployments run the beat sweeper instead).
            stranded = await run_in_threadpool(
                requeue_stale_claims, svc, timedelta(0), enqueue=disp.enqueue_assessment
            )
            if stranded:
                logger.info("re-queued %d claims left unassessed by a previous run", len(stranded))
        deliverer = None
        if settings.task_runner == "inprocess" and settings.webhook_poll_s > 0:
            deliverer = Deliverer(svc.sessions, settings.webhook_poll_s, settings.webhook_retry_scale).start()
        wakeups = None
        if settings.task_runner == "inprocess":
            # Decisions made by this server's other web workers wake this one's waiting requests.
            wakeups = LocalWakeups(settings.data_dir, svc.changes)
            if not wakeups.start(asyncio.get_running_loop()):
                wakeups = None
        listener = None
        broker = settings.broker_url.get_secret_value()
        if settings.task_runner == "celery" and broker.startswith(("redis://", "rediss://")):
            # Workers announce their decisions: requests waiting on them wake at once.
            listener = DecisionListener(broker, svc.changes).start()
        try:
            yield
        finally:
            if listener is not None:
                await run_in_threadpool(listener.close)
            if wakeups is not None:
                wakeups.close()
            if deliverer is not None:
                await run_in_threadpool(deliverer.close)
            app.state.dispatcher = None
            app.state.services = None
            if dispatcher is None:
                await run_in_threadpool(disp.shutdown)
            if services is None:
                svc.close()

    docs = settings.serves_api_docs  # the pages load scripts from a CDN (config.settings)
    app = FastAPI(
        title="ClaimLane",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings)
    app.state.services = None
    app.state.dispatcher = None
    app.add_middleware(BodySizeLimitMiddleware, settings=settings)
    app.add_middleware(UrlTextMiddleware)
    app.add_middleware(RequestMetricsMiddleware)  # inside the request id: its log line carries it
    install_error_handlers(app)  # adds the request-id middleware outermost

    app.include_router(health.router)
    app.include_router(metrics.router)  # GET /metrics (Prometheus)
    app.include_router(claims.router)
    app.include_router(shipments.router)  # the carrier's integration (/v1/shipments...)
    app.include_router(review.router)  # the adjusters' JSON API (/v1/review/...)
    # The adjusters' review console (server-rendered pages over services.reviewing) and its assets.
    app.mount("/console/static", StaticFiles(directory=console.STATIC_DIR), name="console-static")
    app.include_router(console.router)
    app.include_router(admin.router)  # administrators: the model registry (/v1/admin/models...)
    app.include_router(payouts.router)  # the finance outbox (/v1/admin/payouts...)
    app.include_router(webhooks.router)  # status events for integrations (/v1/webhooks...)
    return app


app = create_app()
