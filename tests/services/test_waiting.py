"""services.waiting: a wake-up from any thread, or from another API process of the same server, reaches
the waiting request; nothing is left behind."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.waiting import FAST_RECHECK_S, SAFETY_RECHECK_S, ClaimChanges, LocalWakeups


def test_a_notify_from_another_thread_wakes_the_waiter_at_once() -> None:
    changes = ClaimChanges()

    async def main() -> tuple[bool, float]:
        started = time.monotonic()
        threading.Timer(0.05, changes.notify, args=("c1",)).start()
        woken = await changes.wait("c1", timeout=5)
        return woken, time.monotonic() - started

    woken, elapsed = asyncio.run(main())
    assert woken and elapsed < 1
    assert changes.waiting() == 0


def test_a_wait_times_out_and_other_claims_do_not_wake_it() -> None:
    changes = ClaimChanges()

    async def main() -> bool:
        threading.Timer(0.02, changes.notify, args=("other",)).start()
        return await changes.wait("c1", timeout=0.2)

    assert asyncio.run(main()) is False
    assert changes.waiting() == 0


def test_every_waiter_on_a_claim_is_woken() -> None:
    changes = ClaimChanges()

    async def main() -> list[bool]:
        waits = [asyncio.create_task(changes.wait("c1", timeout=5)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert changes.waiting() == 3
        changes.notify("c1")
        return await asyncio.gather(*waits)

    assert asyncio.run(main()) == [True, True, True]


def test_notify_after_the_event_loop_closed_is_harmless() -> None:
    changes = ClaimChanges()
    loop = asyncio.new_event_loop()
    event = asyncio.Event()
    changes._waiting["c1"] = {(loop, event)}  # a waiter whose loop ended without cleaning up
    loop.close()
    changes.notify("c1")


# --------------------------------------------------------------------------------------------------
# Between the API processes of one embedded server: real Unix datagram sockets, one event loop each
# (as each web worker has its own), here in threads of one process.


@contextmanager
def _api_process(data_dir: Path) -> Iterator[tuple[ClaimChanges, LocalWakeups, asyncio.AbstractEventLoop]]:
    """A ClaimChanges with its LocalWakeups listening on an event loop of its own thread."""
    changes = ClaimChanges()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    wakeups = LocalWakeups(data_dir, changes)
    assert asyncio.run_coroutine_threadsafe(_start(wakeups), loop).result(5)
    try:
        yield changes, wakeups, loop
    finally:
        loop.call_soon_threadsafe(wakeups.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _start(wakeups: LocalWakeups) -> bool:
    return wakeups.start(asyncio.get_running_loop())


def test_a_decision_in_one_api_process_wakes_the_waiters_of_the_other(tmp_path: Path) -> None:
    with _api_process(tmp_path) as (deciding, _, _), _api_process(tmp_path) as (serving, wakeups, loop):
        assert deciding.channel_up and serving.recheck_s == SAFETY_RECHECK_S
        waiting = asyncio.run_coroutine_threadsafe(serving.wait("claim-1", timeout=5), loop)
        for _ in range(100):
            if serving.waiting():
                break
            time.sleep(0.01)
        started = time.monotonic()
        deciding.notify("claim-1")  # the assessment, after its commit, in the other process
        assert waiting.result(5) is True
        assert time.monotonic() - started < 1  # the datagram, not the 1 s safety re-read
        # Each app has its own socket in the data folder's wake-up folder; closing removes it.
        assert len(list(wakeups.folder.glob("*.sock"))) == 2
    assert not wakeups.folder.exists()  # the last one out removes the folder


def test_other_data_folders_are_not_woken(tmp_path: Path) -> None:
    with _api_process(tmp_path / "a") as (deciding, _, _), _api_process(tmp_path / "b") as (other, _, loop):
        waiting = asyncio.run_coroutine_threadsafe(other.wait("claim-1", timeout=0.3), loop)
        time.sleep(0.05)
        deciding.notify("claim-1")
        assert waiting.result(5) is False


def test_the_socket_of_a_killed_process_is_removed_by_the_next_decision(tmp_path: Path) -> None:
    with _api_process(tmp_path) as (deciding, wakeups, _):
        # What kill -9 leaves: a socket file nobody reads any more.
        dead = wakeups.folder / "999999-dead.sock"
        orphan = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        orphan.bind(str(dead))
        orphan.close()
        deciding.notify("claim-1")
        assert not dead.exists()


def test_without_a_socket_waiters_keep_the_fast_recheck(tmp_path: Path) -> None:
    changes = ClaimChanges()
    wakeups = LocalWakeups(tmp_path, changes)
    wakeups.folder.write_bytes(b"")  # a file where the wake-up folder should be: no socket there
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(_start(wakeups)) is False
    finally:
        loop.close()
        wakeups.folder.unlink()
    assert not changes.channel_up and changes.recheck_s == FAST_RECHECK_S
    assert changes.publish is None
