"""``GET /metrics``: Prometheus exposition of `config.metrics` (every process's values under
multiprocess mode) plus the database gauges of `services.operations.MetricsCollector`.

Protected: Prometheus sends `CLAIMLANE_METRICS_TOKEN` as a bearer token; people use an admin's or a
lead's API key. Kept out of the OpenAPI document (it is not JSON and not for the app)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep, SettingsDep, authenticated_user
from claims.errors import Forbidden
from config import metrics
from services.operations import MetricsCollector

router = APIRouter(tags=["operations"])

READERS = ("admin", "lead")


@router.get("/metrics", include_in_schema=False)
async def scrape(
    settings: SettingsDep,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    token = settings.metrics_token.get_secret_value()
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not (token and hmac.compare_digest(given.encode(), token.encode())):

        def check() -> None:
            with services.sessions() as session:
                user = authenticated_user(session, authorization)
                if user.role not in READERS:
                    raise Forbidden("metrics need the admin or lead role, or the metrics token")

        await run_in_threadpool(check)
    registry = metrics.registry([MetricsCollector(services.sessions)])
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
