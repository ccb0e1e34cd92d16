"""A memory budget per upload: hostile photos filed four at once to a real `claimlane serve` process
keep its peak resident memory under `RSS_BOUND_MB`, and each is answered 4xx or 202 (never a 5xx).

The hardening issue measured one 336 KB PNG taking the API to 2.9 GB (two at once: 4.9 GB). Now every
format but JPEG is refused above `max_photo_megapixels` from its header, JPEGs decode at 1/8 scale,
and each photo is decoded once on a bounded pool.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.security import create_user
from config.settings import Settings
from services.context import build_services
from tests.hostile import file_at_once, hostile_files, peak_rss_mb

ROOT = Path(__file__).resolve().parents[2]
RSS_BOUND_MB = 500  # the API process at rest is about 150 MB with the tiny model


@contextlib.contextmanager
def _serve(
    env: dict[str, str], *, stderr: Any = subprocess.DEVNULL, log_level: str = "warning"
) -> Iterator[tuple[str, subprocess.Popen]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = "import sys; from api.cli import main; sys.exit(main())"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            log_level,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None, "the server exited"
            time.sleep(0.2)
        yield base_url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
def test_hostile_photos_filed_at_once_stay_within_the_memory_budget(
    tmp_path: Path, tiny_onnx_model: Path
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMLANE_")}
    env.update(
        CLAIMLANE_DATA_DIR=str(tmp_path / "data"),
        CLAIMLANE_MODEL_PATH=str(tiny_onnx_model),
        CLAIMLANE_RATE_LIMITS="false",
        CLAIMLANE_ORT_INTRA_THREADS="1",
        PYTHONPATH=str(ROOT),
    )
    services = build_services(Settings(data_dir=tmp_path / "data", model_path=tiny_onnx_model))
    with services.sessions() as session:
        _, customer = create_user(session, "customer", "customer")
        session.commit()
    services.close()
    photos = hostile_files()
    with _serve(env) as (base_url, proc):
        statuses = file_at_once(base_url, customer, photos[:4])
        statuses |= file_at_once(base_url, customer, photos[4:])
        peak = peak_rss_mb(proc.pid)
    assert len(statuses) == len(photos)
    assert all(s == 202 or 400 <= s < 500 for s in statuses.values()), statuses
    assert statuses["near-limit.png"] == 422 and statuses["bomb-1bit.png"] == 422
    assert statuses["exif-64mb.jpg"] == 413
    assert statuses["phone.heic"] == 202 and statuses["plain.jpg"] == 202
    assert peak < RSS_BOUND_MB, f"peak RSS {peak:.0f} MB"
