"""services.waiting: a wake-up from any thread reaches the waiting request; nothing is left behind."""

from __future__ import annotations

import asyncio
import threading
import time

from services.waiting import ClaimChanges


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
