"""Per-request metrics and the access log: one pure ASGI middleware, inside the request-id one.

Each answered request moves `claimlane_http_requests_total{method,route,status}` and
`claimlane_http_request_duration_seconds{method,route}`, labelled by the route's template
(``/v1/claims/{claim_id}``), never the raw path, so label values stay few; and writes one
`claimlane.access` log line with the method, path, route, status, duration and request id.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import metrics

access_log = logging.getLogger("claimlane.access")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_of(scope: Scope) -> str:
    """The template of the route that answered (`/console/static` for assets), else `unmatched`.
    A long poll (`?wait=`) is its own route, `...?wait`: it answers when the decision is made, so
    its time is the claim's, not the service's, and would hide the route's own latency."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if path:
        query = scope.get("query_string", b"")
        waits = query.startswith(b"wait=") or b"&wait=" in query
        return f"{path}?wait" if waits else str(path)
    if str(scope.get("path", "")).startswith("/console/static/"):
        return "/console/static"
    return "unmatched"


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "GET")
            method = method if method in _METHODS else "OTHER"
            route = route_of(scope)
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(method, route).observe(elapsed)
            access_log.info(
                "%s %s %d",
                method,
                scope.get("path", ""),
                status,
                extra={
                    "method": method,
                    "path": scope.get("path", ""),
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
