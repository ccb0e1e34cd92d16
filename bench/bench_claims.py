"""Benchmark the claims service end to end: upload -> assessment -> decision, embedded vs Celery.

    python bench/bench_claims.py [--claims 30] [--clients 4] [--photos 3] [--model PATH]

Runs the real server (`claimlane serve`, uvicorn) in a subprocess on a free port, in two modes:

- embedded: SQLite file, local object store, assessments on the API's in-process thread pool;
- celery: the same API publishing to Redis, plus a `celery worker` subprocess (prefork, 2
  processes); PostgreSQL when it is reachable (a scratch database, dropped at the end), else the
  SQLite file shared by both processes. Photos in a local folder both processes share.

`--clients` threads (httpx) each file claims of `--photos` photos and poll ``GET /v1/claims/{id}``
until the claim is decided (offered or in_review). Prints a markdown table: claims/second over the
whole run, and upload-to-decision latency p50/p95, with a ratio column (embedded / Celery). Both
modes get the same assessment parallelism (2) and 1 ONNX Runtime thread per assessment. The Celery
row is skipped, with a note, when Redis is unreachable. A measurement, not a test: numbers depend on
the machine and its load.

Environment: CLAIMLANE_BENCH_REDIS_URL (default redis://127.0.0.1:6379/13),
CLAIMLANE_BENCH_PG_ADMIN_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DECIDED = {"offered", "in_review"}
START_TIMEOUT_S = 90.0
DECISION_TIMEOUT_S = 120.0
POLL_S = 0.05
REDIS_URL = os.environ.get("CLAIMLANE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
PG_ADMIN_URL = os.environ.get(
    "CLAIMLANE_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CLI = [sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main())"]


@dataclass
class Result:
    mode: str
    backend: str
    latencies: list[float] = field(default_factory=list)  # seconds, upload start -> decision seen
    wall_s: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def claims_per_s(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else float("nan")

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


# --------------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMLANE_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", CLAIMLANE_ORT_INTRA_THREADS="1")
    env.update(extra)
    return env


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until(check, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready within {START_TIMEOUT_S:.0f}s:\n{tail(log)}")


def add_customer(env: dict[str, str], name: str) -> str:
    out = subprocess.run(
        [*CLI, "user", "add", name, "--role", "customer"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"claimlane user add failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------------
# Clients


def file_and_wait(client: httpx.Client, photos: list[bytes]) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post(
        "/v1/claims",
        data={"tracking_number": "SF1234567890", "declared_value": "300.00", "currency": "CNY"},
        files=[("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)],
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/claims: {response.status_code} {response.text[:300]}")
    url = response.headers["Location"]
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    while time.monotonic() < deadline:
        status = client.get(url).json()["status"]
        if status in DECIDED:
            return time.perf_counter() - started, status
        time.sleep(POLL_S)
    raise RuntimeError(f"claim {url} not decided within {DECISION_TIMEOUT_S:.0f}s")


def drive(base_url: str, keys: list[str], photos: list[bytes], claims: int, result: Result) -> None:
    """`len(keys)` concurrent clients file `claims` claims in all (after one warm-up claim)."""
    clients = [
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {k}"}, timeout=60) for k in keys
    ]
    try:
        file_and_wait(clients[0], photos)  # warm-up: first inference, connection pools
        lock = threading.Lock()
        remaining = [claims]

        def client_loop(client: httpx.Client) -> None:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                latency, status = file_and_wait(client, photos)
                with lock:
                    result.latencies.append(latency)
                    result.outcomes[status] = result.outcomes.get(status, 0) + 1

        started = time.perf_counter()
        with ThreadPoolExecutor(len(clients)) as pool:
            for future in [pool.submit(client_loop, c) for c in clients]:
                future.result()
        result.wall_s = time.perf_counter() - started
    finally:
        for client in clients:
            client.close()


@contextlib.contextmanager
def server(env: dict[str, str], tmp: Path, name: str) -> Iterator[str]:
    """`claimlane serve` on a free port; yields its base URL once /healthz answers."""
    port = free_port()
    log = tmp / f"{name}-api.log"
    args = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with process(args, env, log) as proc:
        base_url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200, proc, log, "API server"
        )
        yield base_url


def run_embedded(args, tmp: Path, photos: list[bytes], model_env: dict[str, str]) -> Result:
    result = Result("embedded", "SQLite + local files + in-process threads (2)")
    env = base_env(
        {**model_env, "CLAIMLANE_DATA_DIR": str(tmp / "embedded"), "CLAIMLANE_TASK_RUNNER": "inprocess"}
    )
    keys = [add_customer(env, f"bench-embedded-{i}") for i in range(args.clients)]
    with server(env, tmp, "embedded") as base_url:
        drive(base_url, keys, photos, args.claims, result)
    return result


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A fresh PostgreSQL database URL, dropped afterwards; None if PostgreSQL is unreachable."""
    try:
        import psycopg
        from sqlalchemy.engine import make_url

        admin = make_url(PG_ADMIN_URL)
        conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(
            f"note: PostgreSQL unreachable ({str(exc).strip()[:120]}); Celery mode uses SQLite",
            file=sys.stderr,
        )
        yield None
        return
    name = f"claimlane_bench_{uuid.uuid4().hex[:10]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with (
            contextlib.suppress(Exception),
            psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as c,
        ):
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_problem(url: str) -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def run_celery(args, tmp: Path, photos: list[bytes], model_env: dict[str, str]) -> Result:
    problem = redis_problem(REDIS_URL)
    if problem:
        return Result("celery", "-", skipped=f"Redis unreachable at {REDIS_URL} ({problem})")
    queue = f"claimlane-bench-{uuid.uuid4().hex[:8]}"
    with scratch_postgres() as pg_url:
        backend = "PostgreSQL" if pg_url else "SQLite (shared file)"
        result = Result("celery", f"{backend} + local files + Redis + Celery prefork (2)")
        env = base_env(
            {
                **model_env,
                "CLAIMLANE_DATA_DIR": str(tmp / "celery"),
                "CLAIMLANE_LOCAL_STORE_DIR": str(tmp / "celery" / "objects"),
                "CLAIMLANE_TASK_RUNNER": "celery",
                "CLAIMLANE_BROKER_URL": REDIS_URL,
                "CLAIMLANE_CELERY_QUEUE": queue,
                **({"CLAIMLANE_DATABASE_URL": pg_url} if pg_url else {}),
            }
        )
        keys = [add_customer(env, f"bench-celery-{i}") for i in range(args.clients)]  # also migrates
        worker_log = tmp / "celery-worker.log"
        worker_args = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--loglevel=INFO",
                       "--pool=prefork", "--concurrency=2", "-Q", queue, "-n", f"{queue}@%h",
                       "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
        with process(worker_args, env, worker_log) as worker:
            wait_until(
                lambda: " ready." in worker_log.read_text(errors="replace"),
                worker,
                worker_log,
                "Celery worker",
            )
            with server(env, tmp, "celery") as base_url:
                drive(base_url, keys, photos, args.claims, result)
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            client.delete(queue, f"_kombu.binding.{queue}")
            client.close()
    return result


# --------------------------------------------------------------------------------------------------
# Model and photos


def model_env(explicit: str | None, tmp: Path) -> tuple[dict[str, str], str]:
    """CLAIMLANE_MODEL_PATH for the servers, and a note on which model it is."""
    from models.inference import ModelError, default_model_path, load_model

    try:
        path = Path(explicit) if explicit else default_model_path()
        model = load_model(path)
        return {"CLAIMLANE_MODEL_PATH": str(model.path)}, f"model {model.version}"
    except ModelError as exc:
        if explicit:
            raise
        reason = str(exc)
    # No bundled model (e.g. not trained yet): the tests' tiny model keeps the service path honest,
    # but inference then costs next to nothing, so the numbers understate a real model's latency.
    import onnx

    from tests.conftest import TINY_MODEL_VERSION, _tiny_model_proto

    path = tmp / "weights" / TINY_MODEL_VERSION / "model.onnx"
    path.parent.mkdir(parents=True)
    onnx.save(_tiny_model_proto(), str(path))
    return {"CLAIMLANE_MODEL_PATH": str(path)}, (
        f"model {TINY_MODEL_VERSION} (the tests' tiny model: {reason}); inference cost is negligible, "
        "so these numbers measure the service path, not the CNN"
    )


def bench_photos(count: int) -> list[bytes]:
    examples = sorted((ROOT / "examples").glob("*.jpg"))
    if len(examples) >= count:
        return [p.read_bytes() for p in examples[:count]]
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, size=(384, 384, 3), dtype=np.uint8)).save(buf, format="JPEG")
        out.append(buf.getvalue())
    return out


# --------------------------------------------------------------------------------------------------
# Report


def print_report(results: list[Result], args, model_note: str, photo_bytes: int) -> None:
    embedded, celery = results
    print("# Claims benchmark: upload to decision, embedded vs Celery\n")
    print(
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores; "
        f"Python {platform.python_version()}"
    )
    print(f"- {model_note}")
    print(
        f"- {args.claims} claims per mode after 1 warm-up claim, {args.clients} concurrent clients, "
        f"{args.photos} photos per claim ({photo_bytes / 1024:.0f} KiB in all); polling every {POLL_S * 1e3:.0f} ms"
    )
    for r in results:
        if not r.skipped:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items()))
            print(f"- {r.mode}: {r.backend}; outcomes: {outcomes}")
    print()
    print("| Metric | Embedded | Celery | Ratio (embedded / Celery) |")
    print("|---|---:|---:|---:|")
    rows = [
        ("Claims/s", lambda r: r.claims_per_s, "{:.2f}"),
        ("Upload-to-decision p50 (ms)", lambda r: r.pct(50) * 1e3, "{:.0f}"),
        ("Upload-to-decision p95 (ms)", lambda r: r.pct(95) * 1e3, "{:.0f}"),
    ]
    for name, metric, fmt in rows:
        e = metric(embedded)
        if celery.skipped:
            print(f"| {name} | {fmt.format(e)} | skipped | n/a |")
        else:
            c = metric(celery)
            print(f"| {name} | {fmt.format(e)} | {fmt.format(c)} | {e / c:.2f} |")
    print()
    if celery.skipped:
        print(f"- Celery mode skipped: {celery.skipped}. Start Redis (redis-server) to measure it.")
    print("- Ratio > 1 on claims/s means embedded is faster; > 1 on latency means embedded is slower.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=30, help="claims per mode (default 30)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--photos", type=int, default=3, help="photos per claim (default 3)")
    parser.add_argument("--model", metavar="PATH", help="model.onnx or version folder (default: bundled)")
    args = parser.parse_args(argv)
    if args.claims < 1 or args.clients < 1 or args.photos < 1:
        parser.error("--claims, --clients and --photos must be at least 1")

    photos = bench_photos(args.photos)
    with tempfile.TemporaryDirectory(prefix="claimlane-bench-") as name:
        tmp = Path(name)
        env_model, note = model_env(args.model, tmp)
        try:
            embedded = run_embedded(args, tmp, photos, env_model)
            celery = run_celery(args, tmp, photos, env_model)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print_report([embedded, celery], args, note, sum(len(p) for p in photos))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
