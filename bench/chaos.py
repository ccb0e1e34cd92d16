"""Chaos: the service under hostile input and sudden death, on this machine only, with a table.

    python bench/chaos.py [--fuzz 20000] [--parts fuzz,files,worker,api,timing]      (make chaos)

- fuzz: schema-driven requests (schemathesis strategies from the OpenAPI document) with every
  role's key, against the app on embedded SQLite and on a fresh PostgreSQL database; counts answers
  by class. Goal: no 5xx.
- files: hostile photos filed 4 at once to a real `claimlane serve`: a 9400x9400 PNG (just under
  Pillow's pixel limit), a 1-bit PNG bomb (40,000 x 40,000), a 12 MP HEIC and a JPEG carrying 64 MB
  of APP segments; then a JPEG with 14 MB of them (under the upload limit) and a plain one. Goal:
  every answer 4xx or 202, the API's peak RSS (VmHWM) under `RSS_BOUND_MB`.
- worker: 50 claims filed in Celery mode, the worker `kill -9`ed while it assesses them, a new
  worker and the beat started. Goal: 0 claims undecided after 90 s, none decided twice.
- api: a claim upload whose API process is `kill -9`ed after its Idempotency-Key is taken; the API
  started again; the app's retries with the same key. Goal: a 202 within 30 s, one claim.
- timing: a wrong key whose prefix exists against one whose prefix does not. Goal: medians within 5%.

Bounded and local: loopback only, temporary folders, a scratch database dropped at the end.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.bench_claims import (  # noqa: E402
    REDIS_URL,
    base_env,
    process,
    redis_problem,
    scratch_postgres,
    server,
    tail,
)
from tests.hostile import file_at_once, hostile_files, peak_rss_mb, server_pid  # noqa: E402

RSS_BOUND_MB = 500
ROLES = ("customer", "adjuster", "admin", "integration", "lead")
ROWS: list[tuple[str, str, str, str]] = []  # (part, what, figure, goal met)


def row(part: str, what: str, figure: str, ok: bool) -> None:
    ROWS.append((part, what, figure, "yes" if ok else "NO"))
    print(f"  {part}: {what}: {figure} ({'ok' if ok else 'NOT MET'})", flush=True)


def tiny_model_env(tmp: Path) -> dict[str, str]:
    """The tests' tiny model: chaos is about the service, not the CNN (and starts faster)."""
    import onnx

    from tests.conftest import TINY_MODEL_VERSION, _tiny_model_proto

    path = tmp / "weights" / TINY_MODEL_VERSION / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(_tiny_model_proto(), str(path))
    return {"CLAIMLANE_MODEL_PATH": str(path), "CLAIMLANE_RATE_LIMITS": "false"}


# --------------------------------------------------------------------------------------------------
# Fuzz


def fuzz(total: int, tmp: Path, model: dict[str, str], database_url: str | None, label: str) -> None:
    from api.main import create_app
    from config.settings import Settings
    from services.context import build_services
    from tests.fuzzing import fuzz_app, role_keys

    values: dict[str, Any] = {
        "data_dir": tmp / f"fuzz-{label.split()[0]}",
        "model_path": Path(model["CLAIMLANE_MODEL_PATH"]),
        "rate_limits": False,
        "webhook_poll_s": 0,  # generated webhook URLs name random hosts: deliver nothing
    }
    if database_url:
        values["database_url"] = database_url
    services = build_services(Settings(**values))
    started = time.monotonic()
    try:
        counts, failures = fuzz_app(create_app(services=services), role_keys(services), total)
    finally:
        services.close()
    sent = sum(counts.values())
    spread = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    row(
        "fuzz",
        f"{label}: {sent} requests in {time.monotonic() - started:.0f} s ({spread})",
        f"{counts['5xx']} 5xx",
        counts["5xx"] == 0 and sent >= total,
    )
    for failure in failures:
        print(f"    5xx: {failure}")


# --------------------------------------------------------------------------------------------------
# Hostile files


def files_part(tmp: Path, model: dict[str, str]) -> None:
    from bench.bench_claims import add_user

    env = base_env({**model, "CLAIMLANE_DATA_DIR": str(tmp / "files"), "CLAIMLANE_WEB_WORKERS": "1"})
    customer = add_user(env, "files-customer")
    photos = hostile_files()
    with server(env, tmp, "files") as base_url:
        pid = server_pid(base_url)
        start_rss = peak_rss_mb(pid)
        statuses = file_at_once(base_url, customer, photos[:4])  # four at once, then the rest
        statuses |= file_at_once(base_url, customer, photos[4:])
        peak = peak_rss_mb(pid)
    answers = ", ".join(f"{name} {status}" for name, status in statuses.items())
    row(
        "files",
        f"answers: {answers}",
        "all 4xx/202" if ok_statuses(statuses) else "a 5xx",
        ok_statuses(statuses),
    )
    row(
        "files",
        f"API peak RSS with 4 hostile files at once (idle {start_rss:.0f} MB)",
        f"{peak:.0f} MB (bound {RSS_BOUND_MB})",
        peak < RSS_BOUND_MB,
    )


def ok_statuses(statuses: dict[str, int]) -> bool:
    return bool(statuses) and all(s == 202 or 400 <= s < 500 for s in statuses.values())


# --------------------------------------------------------------------------------------------------
# Worker killed mid-task


def worker_part(tmp: Path, model: dict[str, str], claims: int = 50) -> None:
    from sqlalchemy import create_engine, select

    from bench.bench_claims import add_user
    from storage.tables import AuditEvent, Claim

    problem = redis_problem(REDIS_URL)
    if problem:
        row("worker", "skipped", f"Redis unreachable ({problem})", False)
        return
    queue = f"claimlane-chaos-{uuid.uuid4().hex[:8]}"
    with scratch_postgres() as pg_url:
        env = base_env(
            {
                **model,
                "CLAIMLANE_DATA_DIR": str(tmp / "worker"),
                "CLAIMLANE_TASK_RUNNER": "celery",
                "CLAIMLANE_BROKER_URL": REDIS_URL,
                "CLAIMLANE_CELERY_QUEUE": queue,
                **({"CLAIMLANE_DATABASE_URL": pg_url} if pg_url else {}),
            }
        )
        carrier = add_user(env, "worker-carrier", "integration")
        customer = add_user(env, "worker-customer")
        celery = [sys.executable, "-m", "celery", "-A", "workers.celery_app"]

        def worker_args(n: int) -> list[str]:
            return [*celery, "worker", "--loglevel=INFO", "--pool=prefork", "--concurrency=2", "-Q", queue,
                    "-n", f"{queue}-{n}@%h", "--without-gossip", "--without-mingle"]  # fmt: skip

        beat_args = [*celery, "beat", "--loglevel=INFO", "-s", str(tmp / "beat-schedule")]
        log1, log2, beat_log = tmp / "worker1.log", tmp / "worker2.log", tmp / "beat.log"
        url = pg_url or f"sqlite:///{tmp / 'worker' / 'claimlane.db'}"
        engine = create_engine(url)

        def states() -> list[str]:
            with engine.connect() as conn:
                return list(conn.execute(select(Claim.state).where(Claim.id.in_(ids))).scalars())

        with server(env, tmp, "worker") as base_url:
            ids = _file_many(base_url, carrier, customer, claims)  # queued: no worker runs yet
            first = _start(worker_args(1), env, log1)
            # Killed as soon as it has decided its first claims: it holds others, prefetched or half done.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and all(s in ("submitted", "assessing") for s in states()):
                time.sleep(0.05)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            killed_at = time.monotonic()
            pending_at_kill = sum(s in ("submitted", "assessing") for s in states())
            with process(worker_args(2), env, log2), process(beat_args, env, beat_log):
                undecided = pending_at_kill
                while time.monotonic() - killed_at < 90:
                    undecided = sum(s in ("submitted", "assessing") for s in states())
                    if undecided == 0:
                        break
                    time.sleep(1)
                took = time.monotonic() - killed_at
            with engine.connect() as conn:
                decisions = conn.execute(
                    select(AuditEvent.claim_id, AuditEvent.to_state).where(
                        AuditEvent.claim_id.in_(ids),
                        AuditEvent.from_state == "assessing",
                    )
                ).all()
            engine.dispose()
        outcomes: dict[str, set[str]] = collections.defaultdict(set)
        for claim_id, to_state in decisions:
            if to_state and to_state != "assessing":
                outcomes[claim_id].add(to_state)
        twice = sum(len(v) > 1 for v in outcomes.values())
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            client.delete(queue, f"_kombu.binding.{queue}")
            client.close()
    row(
        "worker",
        f"kill -9 of the worker with {pending_at_kill} of {claims} claims not yet decided; undecided after",
        f"{undecided} after {took:.0f} s",
        undecided == 0 and took <= 90,
    )
    row("worker", "claims decided twice into different outcomes", str(twice), twice == 0)
    if undecided:
        print(tail(log2), "\n", tail(beat_log))


def _start(args: list[str], env: dict[str, str], log: Path):
    import subprocess

    with open(log, "wb") as out:
        return subprocess.Popen(
            args, cwd=Path(__file__).resolve().parents[1], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _shipment(client: httpx.Client, carrier: str, tracking: str) -> None:
    """The carrier's record of a delivered parcel insured for 100 CNY (what the claims are checked on)."""
    body = {"declared_value": "100.00", "currency": "CNY", "status": "delivered",
            "delivered_at": "2026-12-01T10:00:00+08:00"}  # fmt: skip
    r = client.put(f"/v1/shipments/{tracking}", json=body, headers={"Authorization": f"Bearer {carrier}"})
    r.raise_for_status()


def _file_many(base_url: str, carrier: str, customer: str, n: int) -> list[str]:
    from bench.phone_photos import phone_jpeg

    ids = []
    with httpx.Client(base_url=base_url, timeout=60) as c:
        for i in range(n):
            tracking = f"WK{uuid.uuid4().hex[:10].upper()}"
            _shipment(c, carrier, tracking)
            r = c.post(
                "/v1/claims",
                data={"tracking_number": tracking},
                files=[("photos", (f"p{i}.jpg", phone_jpeg(1000 + i, size=(800, 600)), "image/jpeg"))],
                headers={"Authorization": f"Bearer {customer}", "Idempotency-Key": uuid.uuid4().hex},
            )
            if r.status_code != 202:
                raise RuntimeError(f"filing failed: {r.status_code} {r.text[:200]}")
            ids.append(r.json()["id"])
    return ids


# --------------------------------------------------------------------------------------------------
# API killed mid-upload


def api_part(tmp: Path, model: dict[str, str]) -> None:
    from bench.bench_claims import add_user
    from bench.phone_photos import phone_jpeg

    env = base_env({**model, "CLAIMLANE_DATA_DIR": str(tmp / "api"), "CLAIMLANE_WEB_WORKERS": "1"})
    carrier = add_user(env, "api-carrier", "integration")
    customer = add_user(env, "api-customer")
    photos = [(f"p{i}.jpg", phone_jpeg(2000 + i), "image/jpeg") for i in range(8)]  # 8 x 12 MP
    key = uuid.uuid4().hex
    tracking = f"AK{uuid.uuid4().hex[:10].upper()}"
    headers = {"Authorization": f"Bearer {customer}", "Idempotency-Key": key}
    killed = False
    with server(env, tmp, "api1") as base_url:
        pid = server_pid(base_url)
        with httpx.Client(base_url=base_url, timeout=60) as c:
            _shipment(c, carrier, tracking)

        def upload() -> None:
            with contextlib.suppress(Exception), httpx.Client(base_url=base_url, timeout=60) as c:
                c.post("/v1/claims", data={"tracking_number": tracking}, files=[("photos", p) for p in photos],
                       headers=headers)  # fmt: skip

        thread = threading.Thread(target=upload)
        thread.start()
        db = tmp / "api" / "claimlane.db"
        deadline = time.monotonic() + 30
        import sqlite3

        while time.monotonic() < deadline and not killed:  # kill once the key is taken, before the commit
            with contextlib.suppress(sqlite3.Error), sqlite3.connect(db, timeout=1) as conn:
                if conn.execute("SELECT count(*) FROM idempotency_keys WHERE state = 'in_flight'").fetchone()[
                    0
                ]:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            time.sleep(0.005)
        thread.join()
    with server(env, tmp, "api2") as base_url:
        started = time.monotonic()
        status = 0
        with httpx.Client(base_url=base_url, timeout=60) as c:
            while time.monotonic() - started < 30:
                r = c.post("/v1/claims", data={"tracking_number": tracking}, files=[("photos", p) for p in photos],
                           headers=headers)  # fmt: skip
                status = r.status_code
                if status == 202:
                    break
                time.sleep(float(r.headers.get("Retry-After", "1")))
        took = time.monotonic() - started
    row(
        "api",
        f"kill -9 of the API mid-upload ({'key in flight' if killed else 'NOT caught in flight'}); "
        "the retry with the same key",
        f"{status} after {took:.1f} s",
        killed and status == 202 and took <= 30,
    )


# --------------------------------------------------------------------------------------------------
# Timing of a wrong key


def timing_part(tmp: Path, model: dict[str, str], rounds: int = 1500) -> None:
    """Median answer time of a wrong key whose prefix exists vs one whose prefix does not
    (interleaved, in-process): the difference must not tell an attacker which prefixes exist."""
    import statistics

    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.security import create_user
    from config.settings import Settings
    from services.context import build_services

    settings = Settings(
        data_dir=tmp / "timing", model_path=Path(model["CLAIMLANE_MODEL_PATH"]), rate_limits=False
    )
    services = build_services(settings)
    with services.sessions() as session:
        _, key = create_user(session, "timing", "customer")
        session.commit()
    prefix = key.split("_")[1]
    known = f"Bearer cl_{prefix}_{'x' * 32}"
    unknown = f"Bearer cl_{'f' * 8 if prefix != 'f' * 8 else '0' * 8}_{'x' * 32}"
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    url = "/v1/claims/00000000-0000-4000-8000-000000000000"
    try:
        with TestClient(create_app(services=services)) as client:
            for i in range(rounds * 2 + 200):
                which = "known" if i % 2 == 0 else "unknown"
                started = time.perf_counter()
                status = client.get(
                    url, headers={"Authorization": known if which == "known" else unknown}
                ).status_code
                elapsed = time.perf_counter() - started
                assert status == 401
                if i >= 200:  # warm-up done
                    times[which].append(elapsed)
    finally:
        services.close()
    a, b = statistics.median(times["known"]) * 1e3, statistics.median(times["unknown"]) * 1e3
    ratio = a / b
    row(
        "timing",
        f"median answer to a wrong key, prefix known vs unknown ({rounds} each, interleaved)",
        f"{a:.3f} vs {b:.3f} ms (x{ratio:.3f})",
        abs(ratio - 1) < 0.05,
    )


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz", type=int, default=20000, help="fuzz requests per backend (default 20000)")
    parser.add_argument("--parts", default="fuzz,files,worker,api,timing")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="claimlane-chaos-") as name:
        tmp = Path(name)
        model = tiny_model_env(tmp)
        if "fuzz" in parts:
            fuzz(args.fuzz, tmp, model, None, "embedded (SQLite)")
            with scratch_postgres() as pg_url:
                if pg_url:
                    fuzz(args.fuzz, tmp, model, pg_url, "PostgreSQL")
                else:
                    row("fuzz", "PostgreSQL", "unreachable", False)
        if "files" in parts:
            files_part(tmp, model)
        if "worker" in parts:
            worker_part(tmp, model)
        if "api" in parts:
            api_part(tmp, model)
        if "timing" in parts:
            timing_part(tmp, model)
    print("\n# Chaos: hostile input and sudden death (this machine, loopback only)\n")
    print("| part | what | figure | goal met |")
    print("|---|---|---|---|")
    for part, what, figure, ok in ROWS:
        print(f"| {part} | {what} | {figure} | {ok} |")
    return 0 if all(r[3] == "yes" for r in ROWS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
