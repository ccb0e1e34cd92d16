"""Benchmark the claims service end to end on real-size phone photos: upload -> decision.

    python bench/bench_claims.py [--claims 20] [--clients 1,4,10] [--photos 3] [--photo-sets 10] [--model PATH]
                                 [--modes embedded,celery] [--heic 5] [--photo-size 4032x3024]

Runs the real server (`claimlane serve`, uvicorn) in a subprocess on a free port, in two modes:

- embedded: SQLite file, local object store, assessments on the API's in-process thread pool;
- celery: the same API publishing to Redis, plus a `celery worker` subprocess (prefork, 2
  processes); PostgreSQL when it is reachable (a scratch database, dropped at the end). Photos in a
  local folder both processes share (the broker carries claim ids, never photos).

Photos: `--photos` 12-megapixel JPEGs of 3-5 MB that `bench/phone_photos.py` generates with camera
noise and phone EXIF (GPS, capture time), XMP and a comment; every claim is on its own tracking
number (with its shipment). `--photo-sets` (10) distinct scenes are sent in turn, so a scene recurs
every tenth claim and the reused-photo check finds it (a review, as much a decision as an offer),
without one set filed hundreds of times making every look-up return hundreds of copies. Every upload
is new bytes all the same (a comment naming it), so its originals are stored as a customer's are
(`--same-bytes` sends the sets byte for byte again, found in the store and not written: the
benchmark before 2026-12-06's afternoon, to compare). `--photo-size 800x600` files small photos
instead, to separate what a claim costs whatever its photos' size (the HTTP request, the database,
the checks) from what 10 MB of photos add.

For each number of concurrent clients (`--clients`), `--claims` claims are filed after a warm-up;
each client gets the decision in the upload's answer, ``Prefer: wait=20`` (201 with the claim),
as the mobile app does (``--no-prefer-wait``: a plain upload and one long poll,
``GET /v1/claims/{id}?wait=20``; ``--poll-ms`` polls instead; to compare). The table gives
claims/s, upload-to-decision p50/p95, errors and undecided claims, and the floor: what the decision
needs at least (one draft-mode decode at the model's size and the hashes per photo, the CNN on the
claim's batch), as CPU time measured in this process right before each row, / cores, with the row's
claims/s as a share of it; and the service's CPU per claim over the row (the server's processes and,
in Celery mode, the worker's, from /proc) with its ratio to the floor: the overhead as work, which
drifts less than throughput on a shared machine. Also measured: how long
after a decision the adjuster's heatmap takes to arrive (it is drawn on first view), that the served
copy carries no GPS, and `--heic` claims of HEIC photos. A measurement, not a test.

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

from bench.phone_photos import SIZE, phone_jpeg  # noqa: E402
from tests.hostile import children  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DECIDED = {"offered", "in_review"}
START_TIMEOUT_S = 90.0
DECISION_TIMEOUT_S = 120.0
WAIT_S = 20  # Prefer: wait=20 on the upload, GET /v1/claims/{id}?wait=20: the long poll


@dataclass
class Follow:
    """How clients follow a claim to its decision: in the upload's answer (``Prefer: wait``, what
    the mobile app does), with a long poll after a plain upload (--no-prefer-wait), or (--poll-ms)
    polling."""

    poll_s: float | None = None
    prefer_wait: bool = True

    def describe(self) -> str:
        if self.poll_s is not None:
            return f"clients poll GET every {self.poll_s * 1e3:.0f} ms"
        if self.prefer_wait:
            return (
                f"clients get the decision in the upload's answer (Prefer: wait={WAIT_S}; a long poll "
                "if it came back 202)"
            )
        return f"clients wait for the decision with one long poll (GET ?wait={WAIT_S})"


FOLLOW = Follow()
REDIS_URL = os.environ.get("CLAIMLANE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
PG_ADMIN_URL = os.environ.get(
    "CLAIMLANE_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CLI = [sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main())"]


@dataclass
class Result:
    mode: str
    backend: str
    clients: int = 1
    latencies: list[float] = field(default_factory=list)  # seconds, upload start -> decision seen
    wall_s: float = 0.0
    client_cpu_s: float = 0.0  # CPU the benchmark's own clients used (they share the machine)
    service_cpu_s: float | None = None  # CPU of the service's processes (API, workers) over the row
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None
    floor_s: float | None = None  # the floor's CPU seconds per claim, measured right before the row
    floor_photo_s: float | None = None  # of which decode and hashes, per photo

    def per_claim(self, seconds: float | None) -> float | None:
        return None if seconds is None or not self.latencies else seconds / len(self.latencies)

    def floor_rate(self, cores: int) -> float | None:
        """Claims per second the floor's work alone allows on `cores` cores (None: not measured)."""
        return None if self.floor_s is None else cores / self.floor_s

    @property
    def claims_per_s(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else float("nan")

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


@dataclass
class Extras:
    heatmap_ms: list[float] = field(default_factory=list)  # decision seen -> heatmap PNG received
    photo_ms: list[float] = field(default_factory=list)  # first GET of a served copy
    served_has_gps: bool | None = None
    heic: Result | None = None


# --------------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMLANE_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", CLAIMLANE_ORT_INTRA_THREADS="1")
    # The limiter stays on (its cost is part of the path) but one bench customer files more claims a
    # minute than a person would.
    env.update(CLAIMLANE_RATE_LIMIT_UPLOADS="100000/minute", CLAIMLANE_RATE_LIMIT_PER_KEY="100000/minute")
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


def tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds (user + system, all threads) used so far by the processes `roots` and their live
    children (the API server's web workers, the Celery worker's pool): what the service spends, read
    from /proc (Linux), so a row's overhead over the floor is measured as work rather than inferred
    from throughput on a machine whose speed drifts."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for root in roots:
        for pid in [root, *children(root)]:
            with contextlib.suppress(OSError):  # exited meanwhile
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


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


def add_user(env: dict[str, str], name: str, role: str = "customer") -> str:
    out = subprocess.run(
        [*CLI, "user", "add", name, "--role", role],
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


@dataclass
class Parties:
    base_url: str
    customers: list[str]
    integration: str
    adjuster: str

    def client(self, key: str) -> httpx.Client:
        # A connection per request, as phones uploading minutes apart make them: with several server
        # processes, each request goes to whichever is free (kept-alive connections pin a client to one).
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
            limits=httpx.Limits(max_keepalive_connections=0),
        )


def _shipment(carrier: httpx.Client) -> str:
    tracking = f"SF{uuid.uuid4().hex[:12].upper()}"
    r = carrier.put(
        f"/v1/shipments/{tracking}",
        json={
            "declared_value": "300.00",
            "currency": "CNY",
            "status": "delivered",
            "delivered_at": "2026-12-01T10:00:00+08:00",
        },
    )
    if r.status_code != 200:
        raise RuntimeError(f"PUT /v1/shipments: {r.status_code} {r.text[:300]}")
    return tracking


def file_and_wait(client: httpx.Client, tracking: str, photo_sets: PhotoSets) -> tuple[float, str, str]:
    """(seconds from upload start to decision seen, the decided status, the claim URL) of a claim on
    `tracking`, a parcel the carrier's feed announced earlier."""
    photos = photo_sets.take()
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if FOLLOW.prefer_wait:
        headers["Prefer"] = f"wait={WAIT_S}"
    started = time.perf_counter()
    response = client.post(
        "/v1/claims",
        data={"tracking_number": tracking},
        files=[("photos", photo) for photo in photos],
        headers=headers,
    )
    if response.status_code not in (201, 202):
        raise RuntimeError(f"POST /v1/claims: {response.status_code} {response.text[:300]}")
    url = response.headers["Location"]
    if response.status_code == 201:  # decided within the wait: the answer is the claim
        status = response.json()["status"]
        if status not in DECIDED:
            raise RuntimeError(f"POST /v1/claims answered 201 with status {status!r}")
        return time.perf_counter() - started, status, url
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    while time.monotonic() < deadline:
        if FOLLOW.poll_s is None:  # the long poll the mobile app uses: answered on the decision
            status = client.get(url, params={"wait": WAIT_S}).json()["status"]
        else:
            status = client.get(url).json()["status"]
        if status in DECIDED:
            return time.perf_counter() - started, status, url
        if FOLLOW.poll_s is not None:
            time.sleep(FOLLOW.poll_s)
    raise RuntimeError(f"claim {url} not decided within {DECISION_TIMEOUT_S:.0f}s")


def drive(
    parties: Parties,
    photos: PhotoSets,
    claims: int,
    result: Result,
    floor: Floor | None = None,
    service: list[int] | None = None,
) -> list[str]:
    """`result.clients` concurrent clients file `claims` claims in all (after one warm-up claim);
    the URLs of the decided claims. The parcels' shipments are pushed by the carrier's feed before
    the clock starts: in production the feed announces every parcel hours or days before any claim
    (and a hundred parcels per claim), so it is not part of a claim's work."""
    keys = parties.customers[: result.clients]
    clients = [parties.client(k) for k in keys]
    carrier = parties.client(parties.integration)
    urls: list[str] = []
    try:
        file_and_wait(clients[0], _shipment(carrier), photos)  # warm-up: first inference, pools
        parcels = [_shipment(carrier) for _ in range(claims)]
        lock = threading.Lock()

        def client_loop(client: httpx.Client) -> None:
            while True:
                with lock:
                    if not parcels:
                        return
                    tracking = parcels.pop()
                try:
                    latency, status, url = file_and_wait(client, tracking, photos)
                except Exception as exc:  # noqa: BLE001 - counted and reported, never hidden
                    with lock:
                        result.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                with lock:
                    result.latencies.append(latency)
                    result.outcomes[status] = result.outcomes.get(status, 0) + 1
                    urls.append(url)

        if floor is not None:
            result.floor_s, result.floor_photo_s = floor.measure()
        service_cpu = tree_cpu_s(service) if service else 0.0
        started, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(len(clients)) as pool:
            for future in [pool.submit(client_loop, c) for c in clients]:
                future.result()
        result.wall_s = time.perf_counter() - started
        result.client_cpu_s = time.process_time() - cpu
        if service:
            result.service_cpu_s = tree_cpu_s(service) - service_cpu
    finally:
        for client in [*clients, carrier]:
            client.close()
    return urls


def after_the_decision(parties: Parties, photos: PhotoSets, extras: Extras, n: int = 5) -> None:
    """For `n` fresh claims: how long the adjuster waits for the heatmap and the served copy once
    the decision is seen, and whether the served copy carries GPS."""
    import io

    from PIL import Image

    customer = parties.client(parties.customers[0])
    carrier = parties.client(parties.integration)
    adjuster = parties.client(parties.adjuster)
    try:
        for _ in range(n):
            _, _, url = file_and_wait(customer, _shipment(carrier), photos)
            claim_id = url.rsplit("/", 1)[-1]
            case = adjuster.get(f"/v1/review/{claim_id}").json()
            shot = case["photos"][0]
            if shot.get("heatmap_url"):
                t = time.perf_counter()
                r = adjuster.get(shot["heatmap_url"])
                if r.status_code == 200:
                    extras.heatmap_ms.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            r = customer.get(shot["url"])
            extras.photo_ms.append((time.perf_counter() - t) * 1e3)
            exif = Image.open(io.BytesIO(r.content)).getexif()
            has_gps = bool(exif.get_ifd(0x8825)) or 0x8825 in exif
            extras.served_has_gps = bool(extras.served_has_gps) or has_gps
    finally:
        for c in (customer, carrier, adjuster):
            c.close()


@contextlib.contextmanager
def serving(env: dict[str, str], tmp: Path, name: str) -> Iterator[tuple[str, int]]:
    """`claimlane serve` on a free port; yields its base URL and process id once /healthz answers."""
    port = free_port()
    log = tmp / f"{name}-api.log"
    args = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with process(args, env, log) as proc:
        base_url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200, proc, log, "API server"
        )
        try:
            yield base_url, proc.pid
        except BaseException:
            print(
                f"API server ({'running' if proc.poll() is None else f'exit {proc.returncode}'}), last lines "
                f"of its log:\n{tail(log)}",
                file=sys.stderr,
            )
            raise


@contextlib.contextmanager
def server(env: dict[str, str], tmp: Path, name: str) -> Iterator[str]:
    """`claimlane serve` on a free port; yields its base URL once /healthz answers."""
    with serving(env, tmp, name) as (base_url, _):
        yield base_url


def _parties(env: dict[str, str], base_url: str, clients: int, prefix: str) -> Parties:
    return Parties(
        base_url,
        [add_user(env, f"{prefix}-customer-{i}") for i in range(clients)],
        add_user(env, f"{prefix}-carrier", "integration"),
        add_user(env, f"{prefix}-adjuster", "adjuster"),
    )


def run_embedded(
    args, tmp: Path, photos, heic, model_env: dict[str, str], extras: Extras, floor: Floor
) -> list[Result]:
    env = base_env(
        {**model_env, "CLAIMLANE_DATA_DIR": str(tmp / "embedded"), "CLAIMLANE_TASK_RUNNER": "inprocess"}
    )
    results = []
    with serving(env, tmp, "embedded") as (base_url, pid):
        parties = _parties(env, base_url, max(args.clients), "embedded")
        for clients in args.clients:
            result = Result("embedded", "SQLite + local files + in-process threads", clients)
            drive(parties, photos, args.claims, result, floor, [pid])
            results.append(result)
        after_the_decision(parties, photos, extras)
        if heic and args.heic:
            extras.heic = Result("embedded, HEIC", "as above", 1)
            drive(parties, PhotoSets([heic]), args.heic, extras.heic)
    return results


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


def run_celery(args, tmp: Path, photos, model_env: dict[str, str], floor: Floor) -> list[Result]:
    problem = redis_problem(REDIS_URL)
    if problem:
        return [Result("celery", "-", skipped=f"Redis unreachable at {REDIS_URL} ({problem})")]
    queue = f"claimlane-bench-{uuid.uuid4().hex[:8]}"
    with scratch_postgres() as pg_url:
        backend = "PostgreSQL" if pg_url else "SQLite (shared file)"
        results = []
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
        add_user(env, "bench-celery-migrate")  # migrates before the worker starts
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
            with serving(env, tmp, "celery") as (base_url, pid):
                parties = _parties(env, base_url, max(args.clients), "celery")
                for clients in args.clients:
                    result = Result(
                        "celery", f"{backend} + local files + Redis + Celery prefork (2)", clients
                    )
                    drive(parties, photos, args.claims, result, floor, [pid, worker.pid])
                    results.append(result)
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            client.delete(queue, f"_kombu.binding.{queue}")
            client.close()
    return results


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


Photo = tuple[str, bytes, str]  # file name, bytes, content type


class PhotoSets:
    """The claims' photos: `sets` distinct sets of `count` photos, handed out in turn (thread-safe).

    Every upload is new bytes, as a customer's photos are (`with_comment`: a comment naming the
    upload, the pixels and the rest of the file unchanged), so each claim stores its originals in the
    content-addressed store rather than finding them there: about 11 ms of service CPU a claim that
    byte-identical recurring sets skipped (paired A/B, ten clients, 2026-12-06: 247.1 -> 257.8 ms). `same_bytes=True`
    sends the sets byte for byte again (the benchmark before that, to compare).

    The scenes recur: with 10 sets a claim's photos look like those of every tenth claim before it, so
    the reused-photo look-up finds them and the claim goes to review; distinct scenes for every claim
    cost 0.7 s a photo to generate. The look-up's cost grows with the copies found (a dozen or so a
    photo in a full run), so this is heavier on it than production, where reuse is rare; by little:
    ten clients filing 100 claims of 100 distinct scenes used 235 ms of service CPU a claim, of 10
    scenes 229-237 ms (2026-12-06)."""

    def __init__(self, sets: list[list[Photo]], same_bytes: bool = False) -> None:
        self.sets = sets
        self.same_bytes = same_bytes
        self._next = 0
        self._lock = threading.Lock()

    @classmethod
    def generate(
        cls, sets: int, count: int, same_bytes: bool = False, size: tuple[int, int] = SIZE
    ) -> PhotoSets:
        return cls(
            [
                [
                    (f"IMG_{s * count + i:04d}.JPG", phone_jpeg(s * count + i, size), "image/jpeg")
                    for i in range(count)
                ]
                for s in range(sets)
            ],
            same_bytes,
        )

    def take(self) -> list[Photo]:
        with self._lock:
            upload = self._next
            photos = self.sets[upload % len(self.sets)]
            self._next += 1
        if self.same_bytes:
            return photos
        from bench.phone_photos import with_comment

        return [
            (name, with_comment(data, f"upload {upload} photo {i}".encode()), kind)
            if kind == "image/jpeg"
            else (name, data, kind)
            for i, (name, data, kind) in enumerate(photos)
        ]


def heic_photos(count: int) -> list[tuple[str, bytes, str]]:
    from bench.phone_photos import heic_photo

    return [(f"IMG_{i:04d}.HEIC", heic_photo(100 + i), "image/heic") for i in range(count)]


class Floor:
    """What the decision needs at least, in CPU seconds per claim: for each photo one draft-mode
    decode at the model's size, its hashes and the model input, plus the CNN on the claim's batch in
    one single-thread run. CPU time of this process (`time.process_time`), best of `repeats`: the
    work itself, not how it was spread over cores. Measured again right before each row, because
    this machine's speed drifts by 10-30% within minutes and a ratio is only worth the floor it is
    taken against."""

    def __init__(self, model_path: str, photos: list[Photo], repeats: int = 5) -> None:
        from models.inference import DamageModel

        self.model = DamageModel(model_path, intra_op_num_threads=1)
        self.model.parallel_runs = 1  # one run on this thread: its CPU time is the CNN's work
        self.photos = photos
        self.repeats = repeats

    def _inputs(self) -> np.ndarray:
        from models.fingerprints import fingerprint
        from models.preprocessing import load_image, to_input

        size = self.model.input_size
        inputs = []
        for _, data, _ in self.photos:
            img = load_image(data, min_side=size)
            fingerprint(img)
            inputs.append(to_input(img, size))
        return np.stack(inputs)

    def measure(self) -> tuple[float, float]:
        """(CPU seconds per claim, of which decode and hashes per photo)."""
        decode, cnn = [], []
        batch = self._inputs()  # warm: first decode and first run are not the floor
        self.model.assess(batch)
        for _ in range(self.repeats):
            cpu = time.process_time()
            batch = self._inputs()
            decode.append(time.process_time() - cpu)
            cpu = time.process_time()
            self.model.assess(batch)
            cnn.append(time.process_time() - cpu)
        return min(decode) + min(cnn), min(decode) / len(self.photos)


# --------------------------------------------------------------------------------------------------
# Report


def print_report(results: list[Result], extras: Extras, args, model_note: str, photos) -> None:
    cores = os.cpu_count() or 1
    megapixels = args.photo_size[0] * args.photo_size[1] / 1e6
    print(f"# Claims benchmark: upload to decision on {megapixels:.1f} MP phone photos\n")
    print(
        f"- machine: {platform.processor() or platform.machine()}, {cores} CPU cores; "
        f"Python {platform.python_version()}; {model_note}"
    )
    sizes = ", ".join(f"{len(d) / 1e6:.1f} MB" for _, d, _ in photos)
    print(
        f"- {args.claims} claims per row after 1 warm-up, {len(photos)} photos per claim "
        f"({args.photo_size[0]}x{args.photo_size[1]} JPEG: "
        f"{sizes}; {args.photo_sets} distinct scenes used in turn, "
        f"{'the same bytes each time' if args.same_bytes else 'each upload new bytes'}); {FOLLOW.describe()}"
    )
    floors = [r.floor_s for r in results if r.floor_s is not None]
    per_photo = [r.floor_photo_s for r in results if r.floor_photo_s is not None]
    if floors and per_photo:
        print(
            f"- floor: the CPU time of what the decision needs at least (per photo: one draft-mode decode at "
            f"the model's size, the hashes and the model input; per claim: the CNN on the batch, one "
            f"thread), measured right before each row: {min(floors) * 1e3:.0f}-{max(floors) * 1e3:.0f} ms "
            f"per claim ({min(per_photo) * 1e3:.0f}-{max(per_photo) * 1e3:.0f} ms per photo to decode and "
            f"hash), so at most {cores / max(floors):.1f}-{cores / min(floors):.1f} claims/s on {cores} "
            f"cores; each row's share is taken against its own floor"
        )
    print()
    print(
        "| mode | clients | claims/s | floor claims/s | share of floor | p50 ms | p95 ms "
        "| service CPU ms/claim | x floor | client CPU ms/claim | errors | outcomes |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in [*results, *([extras.heic] if extras.heic else [])]:
        if r.skipped:
            print(f"| {r.mode} | - | skipped: {r.skipped} | | | | | | | | | |")
            continue
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items()))
        rate = r.floor_rate(cores)
        floor = " | " if rate is None else f"{rate:.1f} | {r.claims_per_s / rate:.0%}"
        service = r.per_claim(r.service_cpu_s)
        work = " | " if service is None else f"{service * 1e3:.0f} | "
        if service is not None and r.floor_s:
            work += f"{service / r.floor_s:.2f}"
        print(
            f"| {r.mode} | {r.clients} | {r.claims_per_s:.2f} | {floor} | "
            f"{r.pct(50) * 1e3:.0f} | {r.pct(95) * 1e3:.0f} | {work} | "
            f"{r.client_cpu_s / max(1, len(r.latencies)) * 1e3:.0f} | {len(r.errors)} | {outcomes} |"
        )
    print()
    if extras.heatmap_ms:
        print(
            f"- heatmap for the adjuster after the decision: drawn on first view in "
            f"{np.median(extras.heatmap_ms):.0f} ms median (max {max(extras.heatmap_ms):.0f} ms, "
            f"{len(extras.heatmap_ms)} claims)"
        )
    else:
        print("- heatmap: this model draws none")
    if extras.photo_ms:
        print(
            f"- served copy (made on first view, metadata stripped without re-encoding): "
            f"{np.median(extras.photo_ms):.0f} ms median; carries GPS: {'YES' if extras.served_has_gps else 'no'}"
        )
    for r in results:
        for error in r.errors[:3]:
            print(f"- error ({r.mode}, {r.clients} clients): {error}")


def photo_size(text: str) -> tuple[int, int]:
    """`--photo-size`: WIDTHxHEIGHT, each side at least 256 pixels."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"WIDTHxHEIGHT, got {text!r}") from None
    if min(width, height) < 256:
        raise argparse.ArgumentTypeError(f"each side at least 256 pixels, got {text!r}")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=20, help="claims per row (default 20)")
    parser.add_argument("--clients", default="1,4,10", help="concurrent clients per row (default 1,4,10)")
    parser.add_argument("--photos", type=int, default=3, help="photos per claim (default 3)")
    parser.add_argument(
        "--photo-sets", type=int, default=10, help="distinct sets of photos, used in turn (default 10)"
    )
    parser.add_argument(
        "--photo-size",
        type=photo_size,
        default=SIZE,
        metavar="WxH",
        help="the JPEGs' WIDTHxHEIGHT (default 4032x3024, 12 MP; smaller sizes show the per-claim cost "
        "that does not depend on the photos)",
    )
    parser.add_argument("--modes", default="embedded,celery")
    parser.add_argument("--heic", type=int, default=5, help="HEIC claims at 1 client (0: none)")
    parser.add_argument("--model", metavar="PATH", help="model.onnx or version folder (default: bundled)")
    parser.add_argument(
        "--web-workers", type=int, default=os.cpu_count() or 1, help="API server processes (default: cores)"
    )
    parser.add_argument(
        "--poll-ms", type=float, help="poll GET every this many ms instead of the long poll (to compare)"
    )
    parser.add_argument(
        "--same-bytes",
        action="store_true",
        help="send the photo sets byte for byte again (found in the store, not written; to compare)",
    )
    parser.add_argument(
        "--no-prefer-wait",
        action="store_true",
        help="upload without Prefer: wait, then a long poll GET (the flow before it, to compare)",
    )
    args = parser.parse_args(argv)
    FOLLOW.poll_s = args.poll_ms / 1e3 if args.poll_ms else None
    FOLLOW.prefer_wait = not args.no_prefer_wait and FOLLOW.poll_s is None
    args.clients = [int(c) for c in str(args.clients).split(",")]
    if args.claims < 1 or min(args.clients) < 1 or args.photos < 1 or args.photo_sets < 1:
        parser.error("--claims, --clients, --photos and --photo-sets must be at least 1")
    modes = set(args.modes.split(","))

    photo_sets = PhotoSets.generate(args.photo_sets, args.photos, args.same_bytes, args.photo_size)
    photos = photo_sets.sets[0]
    heic = heic_photos(args.photos) if args.heic else []
    with tempfile.TemporaryDirectory(prefix="claimlane-bench-") as name:
        tmp = Path(name)
        env_model, note = model_env(args.model, tmp)
        env_model["CLAIMLANE_WEB_WORKERS"] = str(args.web_workers)
        note += f"; {args.web_workers} API server process(es), ONNX Runtime 1 thread per assessment"
        floor = Floor(env_model["CLAIMLANE_MODEL_PATH"], photos)
        extras = Extras()
        results: list[Result] = []
        try:
            if "embedded" in modes:
                results += run_embedded(args, tmp, photo_sets, heic, env_model, extras, floor)
            if "celery" in modes:
                results += run_celery(args, tmp, photo_sets, env_model, floor)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print_report(results, extras, args, note, photos)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
