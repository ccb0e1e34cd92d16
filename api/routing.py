"""Routes that authorise before they read a body.

FastAPI reads and parses a request's body before it solves the route's dependencies, so with the
API key checked in a dependency, a request without a valid key could still make the server parse a
100 MB multipart upload, and a customer sending malformed JSON to an admin route was told 400 (bad
JSON) instead of 403. `AuthorisedRoute` runs the route's own authorisation first: the key (401), the
role the route's dependencies require (403), the lockout of an address that failed too often and
the key's rate limits (429, uploads stricter); only then is the body read. The dependency
(`api.deps.get_current_user`) then takes the user this check found, without reading it again.

Every router of the JSON API uses it (`APIRouter(route_class=AuthorisedRoute)`), and each route's
OpenAPI entry lists the 401/403/429 answers it can give (and 413 when it takes a body).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, params
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.deps import authenticated_user, get_current_user
from api.errors import Forbidden, ServiceUnavailable, error_responses
from api.ratelimit import RateLimiter

# Statuses the gate itself can answer, as the OpenAPI document describes them.
GATE_RESPONSES = {
    413: "The request body is larger than any valid request could be.",
    422: "Invalid fields; the message names each.",
    401: "Missing or invalid API key.",
    403: "The API key's role may not do this.",
    429: "Too many requests (per key; uploads stricter) or too many failed sign-ins from this "
    "address; retry after Retry-After seconds.",
}


@dataclass(frozen=True)
class Gate:
    roles: tuple[str, ...]  # empty: any authenticated user
    upload: bool  # counted against the stricter upload limit too


def _gate(dependant: Dependant) -> Gate | None:
    """What the route's dependencies demand: a user (and which roles), or nothing."""
    needs_user = False
    roles: tuple[str, ...] = ()
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is get_current_user:
            needs_user = True
        required = getattr(dep.call, "roles", None)
        if required is not None:
            needs_user, roles = True, tuple(required)
        stack.extend(dep.dependencies)
    if not needs_user:
        return None
    upload = any(isinstance(p.field_info, params.File) for p in dependant.body_params)
    return Gate(roles, upload)


def authorise_request(request: Request, gate: Gate) -> None:
    """The gate (module doc); on success the user is on `request.state.user`."""
    services = getattr(request.app.state, "services", None)
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if services is None or limiter is None:
        raise ServiceUnavailable("the service is starting up; retry shortly")
    address = request.client.host if request.client else "unknown"
    limiter.check("auth_failures", address)
    with services.sessions() as session:
        try:
            user = authenticated_user(session, request.headers.get("authorization"))
        except Exception:
            limiter.hit("auth_failures", address)
            raise
        if gate.roles and user.role not in gate.roles:
            raise Forbidden(f"this action needs the {' or '.join(gate.roles)} role")
        limiter.hit("per_key", user.key_prefix)
        if gate.upload:
            limiter.hit("uploads", user.key_prefix)
        request.state.user = user  # detached when the session closes; api.deps merges it back


class AuthorisedRoute(APIRoute):
    """An API route whose authorisation runs before its body is read (module doc)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        gate = self.gate
        if gate is not None:
            codes = [401, 429] if not gate.roles else [401, 403, 429]
            if self.body_field is not None:  # api.main's body limit answers before the route runs
                codes.append(413)
            for code in codes:
                self.responses.setdefault(code, error_responses(GATE_RESPONSES, code)[code])

    @functools.cached_property
    def gate(self) -> Gate | None:
        """What this route's dependencies demand, read once from them."""
        return _gate(self.dependant)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        gate = self.gate
        if gate is None:
            return handler

        async def authorised_first(request: Request) -> Response:
            await run_in_threadpool(authorise_request, request, gate)
            return await handler(request)

        return authorised_first
