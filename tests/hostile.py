"""Hostile photos and the process measurements around them, shared by the memory-budget test
(tests/api/test_memory_budget.py) and `make chaos`.

- the near-limit PNG of the hardening issue: 9400x9400 RGBA of zeros (88 MP, just under Pillow's limit;
  a few hundred KB);
- a 1-bit PNG bomb: 40,000 x 40,000 (1.6 gigapixels in about 200 KB);
- a 12 MP HEIC, as an iPhone saves it (decoded in full: no draft mode);
- a JPEG carrying 64 MB of APP segments (over the upload limit), and one carrying 14 MB (under it);
- a plain JPEG, as a control.
The first four are the hardening issue's "filed at once" set.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import uuid
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from tests.factories import scene_photo


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def _heic_12mp() -> bytes:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    rng = np.random.default_rng(7)
    small = rng.integers(60, 200, size=(378, 504, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((4032, 3024), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="HEIF", quality=70)
    return buf.getvalue()


def _with_app_segments(jpeg: bytes, megabytes: int, marker: bytes = b"\xff\xe1") -> bytes:
    """`jpeg` with about `megabytes` MB of extra APP segments (64 KB each) after its SOI marker."""
    segment = marker + (65533).to_bytes(2, "big") + os.urandom(65531)
    return jpeg[:2] + segment * (megabytes * 16) + jpeg[2:]


def hostile_files() -> list[tuple[str, bytes, str]]:
    """(name, bytes, content type) of each hostile photo (module doc)."""
    base = scene_photo(5)
    return [
        ("near-limit.png", _png(Image.new("RGBA", (9400, 9400))), "image/png"),
        ("bomb-1bit.png", _png(Image.new("1", (40000, 40000))), "image/png"),
        ("phone.heic", _heic_12mp(), "image/heic"),
        ("exif-64mb.jpg", _with_app_segments(base, 64, b"\xff\xe2"), "image/jpeg"),
        ("exif-14mb.jpg", _with_app_segments(base, 14), "image/jpeg"),
        ("plain.jpg", scene_photo(9), "image/jpeg"),
    ]


def peak_rss_mb(pid: int) -> float:
    """The highest peak resident memory (VmHWM) of the process and its children so far, in MB."""
    peak = 0.0
    for p in [pid, *children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def children(pid: int) -> list[int]:
    """The ids of the live processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def server_pid(base_url: str) -> int:
    """The pid listening on the base URL's port (the uvicorn process)."""
    port = int(base_url.rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # LISTEN
            inodes.add(fields[9])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(entry.name)
    raise RuntimeError(f"no process listens on port {port}")


def file_at_once(base_url: str, customer_key: str, photos: list[tuple[str, bytes, str]]) -> dict[str, int]:
    """File a claim for each photo, all at the same moment (one thread each); the status of each
    answer by photo name. Each claim names its own parcel and a declared value (no shipment needed:
    the photo is checked before anything else is)."""
    statuses: dict[str, int] = {}

    def file_one(item: tuple[str, bytes, str]) -> None:
        with httpx.Client(base_url=base_url, timeout=120) as client:
            r = client.post(
                "/v1/claims",
                data={"tracking_number": f"HF{uuid.uuid4().hex[:10].upper()}", "declared_value": "50.00"},
                files=[("photos", item)],
                headers={"Authorization": f"Bearer {customer_key}", "Idempotency-Key": uuid.uuid4().hex},
            )
            statuses[item[0]] = r.status_code

    threads = [threading.Thread(target=file_one, args=(item,)) for item in photos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses
