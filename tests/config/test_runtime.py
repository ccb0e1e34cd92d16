"""The allocator set-up (`config.runtime.keep_freed_memory`), measured in a fresh interpreter each
time, since it changes the whole process."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from config.runtime import keep_freed_memory, mallopt_values

ROOT = Path(__file__).resolve().parents[2]

# What an upload does with its bytes, twenty times: the request body grown in 256 KiB pieces to
# 3.5 MiB, copied out, cut into pieces and joined again (as the web layer and the photo's spool do).
# The page faults of the second round of twenty (the first faults the memory in either way).
CHURN = """
import os, resource, sys
from config.runtime import keep_freed_memory

PIECE = os.urandom(256 << 10)

def upload():
    body = bytearray()
    for _ in range(14):
        body += PIECE
    data = bytes(body)
    del body
    return b"".join([data[i : i + len(PIECE)] for i in range(0, len(data), len(PIECE))])

def churn():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        upload()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

if sys.argv[1] == "keep":
    assert keep_freed_memory(64 << 20)
churn()
print(churn())
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(3) is glibc's")
def test_freed_upload_buffers_are_reused_instead_of_faulted_in_again() -> None:
    # glibc's defaults: the larger buffers are fresh mmaps each time, every page faulted in (about
    # 2,600 faults an upload here, as many as the server showed per claim of three 12 MP photos).
    assert _faults("default") >= 20 * 1000
    assert _faults("keep") < 200


def test_more_than_a_c_int_keeps_the_most_it_can_rather_than_wrapping_to_nothing() -> None:
    # mallopt(3) takes a C int: 4 GiB would arrive as 0 ("trim at once"), the opposite of the ask.
    values = mallopt_values(4 << 30)
    assert all(0 < value <= 2**31 - 1 for value in values.values())
    assert max(values.values()) == 2**31 - 1


def test_zero_leaves_the_allocator_alone() -> None:
    assert keep_freed_memory(0) is False
