"""Errors: the HTTP face of the one error family (`claims.errors`), and ONE installer of every
exception handler.

Every error the service answers has the same JSON shape, whatever raised it::

    {"error": {"code": "not_found", "message": "claim not found", "details": null}}

`code` is a stable machine string a client may switch on; `message` is written for a person;
`details` is optional structured context (for validation errors: one entry per bad field).

Mapping (see `install_error_handlers`):

- the one error family (`claims.errors.ClaimLaneError` and its subclasses, raised by the services):
  the status of `STATUS_OF`, their code, message and details, Retry-After when they carry one;
  `HttpError` (web-only answers such as the console's login redirect): its own status and headers;
- `RequestValidationError` (FastAPI's parameter/body validation): 422 naming every bad field;
- `claims.lifecycle.IllegalTransition`: 409;
- `claims.money.MoneyError`: 422;
- `models.preprocessing.ImageError`: 422 for every image problem, unsupported formats included
  (one status for "this file is not a photo we accept", the message says which problem it is);
- `storage.objects.ObjectStoreUnavailable`, and database errors for which
  `storage.db.is_unavailable` is true: 503 with Retry-After;
- Starlette's `HTTPException` (unknown route 404, wrong method 405, body too large 413): same shape;
- anything else: 500, logged with the request id (a bug: no input may cause it).

A request id (`X-Request-ID`, taken from the client when it is a sane token, else generated) is put
on every response and in every 500 log line, so a customer's report can be matched to the log.
"""

from __future__ import annotations

import logging
import re
import uuid
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claims.errors import (
    BadRequest,
    ClaimLaneError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from claims.lifecycle import IllegalTransition
from claims.money import MoneyError
from config.logs import request_id_var
from models.preprocessing import ImageError

logger = logging.getLogger("claimlane.api")

REQUEST_ID_HEADER = "X-Request-ID"
DEFAULT_RETRY_AFTER_S = 5
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class HttpError(ClaimLaneError):
    """An answer only the web layer gives (a redirect to the console's login page): its own status
    and headers. Use cases never raise it; they raise the `claims.errors` family."""

    status_code: int = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers = dict(headers or {})


# Each member of the family and its HTTP status (the most specific class listed wins).
STATUS_OF: dict[type[ClaimLaneError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    Unprocessable: 422,
    TooManyRequests: 429,
    ServiceUnavailable: 503,
}


def status_of(exc: ClaimLaneError) -> int:
    if isinstance(exc, HttpError):
        return exc.status_code
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def headers_of(exc: ClaimLaneError) -> dict[str, str]:
    headers = dict(exc.headers) if isinstance(exc, HttpError) else {}
    if exc.retry_after is not None:
        headers.setdefault("Retry-After", str(exc.retry_after))
    if isinstance(exc, Unauthorized):
        headers.setdefault("WWW-Authenticate", "Bearer")
    if (
        isinstance(exc, Conflict)
        and isinstance(exc.details, dict)
        and isinstance(exc.details.get("url"), str)
    ):
        headers.setdefault("Location", exc.details["url"])  # the resource the request collided with
    return headers


# --------------------------------------------------------------------------------------------------
# Request ids


def request_id_of(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


class RequestIdMiddleware:
    """Gives each request an id (scope state `request_id`) and echoes it as `X-Request-ID`; adds
    `X-Content-Type-Options: nosniff` to every answer and `Cache-Control: no-store` to JSON ones."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)  # every log line of this request carries it (config.logs)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                names = {k.lower() for k, _ in headers}
                # Every answer: the browser must not guess a type; JSON answers (claims, cases, keys'
                # results) are never stored by a cache, unless the route said otherwise.
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"application/json") and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


# --------------------------------------------------------------------------------------------------
# Responses


def error_response(
    status_code: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status_code,
        content={"error": {"code": code, "message": message, "details": details}},
        headers=headers,
    )


def _unavailable(what: str) -> JSONResponse:
    return error_response(
        503,
        "service_unavailable",
        f"the {what} is temporarily unavailable; please retry later",
        headers={"Retry-After": str(DEFAULT_RETRY_AFTER_S)},
    )


def _internal(request: Request, exc: BaseException) -> JSONResponse:
    request_id = request_id_of(request) or uuid.uuid4().hex
    logger.error(
        "unhandled error on %s %s [request_id=%s]",
        request.method,
        request.url.path,
        request_id,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return error_response(
        500,
        "internal_error",
        f"an internal error occurred; quote request id {request_id} if you contact us",
        details={"request_id": request_id},
        headers={REQUEST_ID_HEADER: request_id},
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'photos', 0) -> 'photos[0]'; ('header', 'idempotency-key') -> 'idempotency-key'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or str(loc[0] if loc else "request")


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's errors, without echoing the input (which may be a file or a megabyte of text)."""
    out = []
    for err in errors:
        loc: tuple[Any, ...] = tuple(err.get("loc") or ())
        message = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid":
            # loc is ("body", <character offset>): name the body, say where the JSON broke.
            offset = loc[1] if len(loc) > 1 else None
            message = f"the body is not valid JSON{'' if offset is None else f' (at character {offset})'}"
            loc = ("body",)
        out.append(
            {
                "field": _field_name(loc),
                "location": str(loc[0]) if loc else "body",
                "message": message,
                "type": str(err.get("type", "value_error")),
            }
        )
    return out


def _summary(details: list[dict[str, str]]) -> str:
    shown = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return f"invalid request: {shown}{more}" if shown else "invalid request"


# --------------------------------------------------------------------------------------------------
# Handlers


async def _app_error(request: Request, exc: ClaimLaneError) -> JSONResponse:
    return error_response(status_of(exc), exc.code, exc.message, exc.details, headers_of(exc) or None)


async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = validation_details(list(exc.errors()))
    return error_response(422, "validation_error", _summary(details), details)


async def _illegal_transition(request: Request, exc: IllegalTransition) -> JSONResponse:
    return error_response(
        409, "illegal_transition", str(exc), {"state": str(exc.current), "target": str(exc.target)}
    )


async def _money_error(request: Request, exc: MoneyError) -> JSONResponse:
    return error_response(422, "invalid_amount", str(exc))


async def _image_error(request: Request, exc: ImageError) -> JSONResponse:
    return error_response(422, "invalid_photo", str(exc))


async def _object_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("object store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return _unavailable("photo store")


async def _database_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
    from storage.db import is_unavailable

    if is_unavailable(exc):
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return _unavailable("database")
    return _internal(request, exc)


async def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        401: "unauthorized",
        403: "forbidden",
        400: "bad_request",
    }
    code = codes.get(status, f"http_{status}")
    if status == 404 and exc.detail in (None, "Not Found"):
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif status == 405 and exc.detail in (None, "Method Not Allowed"):
        message = f"method {request.method} is not allowed on {request.url.path}"
    elif status == 413 and exc.detail in (None, "Content Too Large", "Request Entity Too Large"):
        message = "request body too large"
    else:
        try:
            message = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
        except ValueError:
            message = f"HTTP {status}"
    return error_response(status, code, message, headers=getattr(exc, "headers", None))


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    return _internal(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler (and the request-id middleware) on `app`. Call once per app."""
    from storage.objects import ObjectStoreUnavailable

    app.add_middleware(RequestIdMiddleware)
    # Starlette types a handler as taking any Exception; each of ours takes the class it is
    # registered for, which Starlette guarantees at run time.
    handlers: list[tuple[type[Exception], Any]] = [
        (ClaimLaneError, _app_error),
        (RequestValidationError, _request_validation),
        (IllegalTransition, _illegal_transition),
        (MoneyError, _money_error),
        (ImageError, _image_error),
        (ObjectStoreUnavailable, _object_store_unavailable),
        (SQLAlchemyError, _database_error),
        (StarletteHTTPException, _http_exception),
        (Exception, _unhandled),
    ]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)


def error_responses(descriptions: dict[int, str], *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: each status in the one error shape, with the router's own
    description. 422 is always listed, since FastAPI would otherwise document its own shape."""
    from api.schemas import ErrorResponse

    return {
        code: {"model": ErrorResponse, "description": descriptions[code]} for code in sorted({*codes, 422})
    }


__all__ = [
    "BadRequest",
    "ClaimLaneError",
    "Conflict",
    "Forbidden",
    "HttpError",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "error_response",
    "error_responses",
    "install_error_handlers",
    "status_of",
]
