"""Process set-up: where multiprocess metrics live (before anything imports prometheus-client, so
not in `config.metrics`, which does), and how the allocator treats freed memory."""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_metrics_folder(folder: Path) -> Path:
    """Multiprocess metrics (config.metrics): every server process writes its values under one
    folder, emptied now, before any process has imported prometheus-client; the variable is
    inherited by the processes uvicorn starts. An operator's own PROMETHEUS_MULTIPROC_DIR is used
    as it is (and not emptied)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        return Path(given)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder.resolve())
    return folder


# glibc's mallopt(3) parameters.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit systems.
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
# mallopt takes a C int: a larger value would wrap (4 GiB becomes 0, "trim at once").
_INT_MAX = 2**31 - 1


def keep_freed_memory(keep_bytes: int) -> bool:
    """Let this process's allocator keep up to `keep_bytes` of freed memory for reuse instead of
    handing it back to the system at once; True when applied (glibc only; 0 changes nothing).

    Why: an upload passes through buffers of 256 KiB to 15 MiB (the request body's pieces, each
    photo joined, its decode). With glibc's defaults many of them are fresh mmaps, every page a
    page fault with a zeroed page, then an munmap: at one client about 2,700 faults and 8 ms of CPU
    a claim of three 12 MP photos, 3% of what the service spends on it (a paired A/B of two servers
    filing claims alternately); at ten clients glibc's adaptive thresholds already avoid most of
    them (about 900) and the difference was within the noise. Kept, the memory is reused by the
    next upload. What it costs: up to `keep_bytes` more resident memory per allocator arena after
    a burst."""
    if keep_bytes <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = [mallopt(param, value) for param, value in mallopt_values(keep_bytes).items()]
    return all(applied)


def mallopt_values(keep_bytes: int) -> dict[int, int]:
    """The mallopt(3) parameters `keep_freed_memory` sets, each within a C int."""
    keep_bytes = min(keep_bytes, _INT_MAX)
    threshold = min(_MMAP_THRESHOLD_MAX, keep_bytes)
    return {
        _M_MMAP_THRESHOLD: threshold,  # buffers below it come from the reusable heap
        _M_TRIM_THRESHOLD: keep_bytes,  # free heap memory kept before trimming
        _M_TOP_PAD: threshold // 2,  # grow the heap in steps, not page by page
    }
