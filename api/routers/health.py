"""Liveness and readiness.

- `GET /healthz`: the process is up and serving (200, always). For restarts by the orchestrator.
- `GET /readyz`: the service can do its work: the database answers, the object store answers and
  the damage model is loaded. 200 when all three pass; otherwise 503 with each check's result and a
  Retry-After header, so a load balancer stops routing here until they pass again. The checks run
  concurrently and each is given at most `CHECK_TIMEOUT_S`, so a dead dependency never makes the
  probe itself hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.errors import DEFAULT_RETRY_AFTER_S
from api.schemas import CheckResult, Liveness, Readiness
from storage.db import ping

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 3.0
# Shared by all probes: a hung dependency ties up at most these threads, never the request pool.
_executor = ThreadPoolExecutor(max_workers=6, thread_name_prefix="claimlane-readyz")


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process is up")
def healthz() -> Liveness:
    return Liveness()


def _describe(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    return text[:300]


def _run_checks(checks: dict[str, Callable[[], object]], timeout: float) -> dict[str, CheckResult]:
    started = time.monotonic()
    futures = {name: _executor.submit(_timed, fn) for name, fn in checks.items()}
    results: dict[str, CheckResult] = {}
    for name, future in futures.items():
        remaining = max(0.0, timeout - (time.monotonic() - started))
        try:
            error, duration = future.result(timeout=remaining)
        except FutureTimeout:
            results[name] = CheckResult(
                ok=False, detail=f"timed out after {timeout:.0f} s", duration_ms=round(timeout * 1000, 1)
            )
            continue
        results[name] = CheckResult(ok=error is None, detail=error, duration_ms=round(duration * 1000, 1))
    return results


def _timed(fn: Callable[[], object]) -> tuple[str | None, float]:
    start = time.monotonic()
    try:
        fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {_describe(exc)}", time.monotonic() - start
    return None, time.monotonic() - start


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: database, object store and model",
    responses={503: {"model": Readiness, "description": "Not ready; see each check."}},
)
def readyz(request: Request) -> JSONResponse:
    services = getattr(request.app.state, "services", None)
    if services is None:
        checks = {
            name: CheckResult(ok=False, detail="the service is starting", duration_ms=0.0)
            for name in ("database", "object_store", "model")
        }
    else:
        checks = _run_checks(
            {
                "database": lambda: ping(services.engine),
                "object_store": services.store.ping,
                "model": services.model,
            },
            CHECK_TIMEOUT_S,
        )
    ready = all(c.ok for c in checks.values())
    body = Readiness(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(
        status_code=200 if ready else 503,
        content=body.model_dump(mode="json"),
        headers=None if ready else {"Retry-After": str(DEFAULT_RETRY_AFTER_S)},
    )
