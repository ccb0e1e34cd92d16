"""workers.decisions: a Celery worker's decision, published on Redis, wakes the API process's waiting
requests at once (they would otherwise notice it at their next re-read)."""

from __future__ import annotations

import asyncio
import time

from services.waiting import FAST_RECHECK_S, SAFETY_RECHECK_S, ClaimChanges
from workers.decisions import DecisionListener, publisher


def test_a_published_decision_wakes_the_waiters_of_another_process(redis_url: str) -> None:
    api_side = ClaimChanges()
    listener = DecisionListener(redis_url, api_side).start()
    worker_side = ClaimChanges()
    worker_side.publish = publisher(redis_url)
    try:

        async def main() -> tuple[bool, float]:
            for _ in range(50):  # the listener has subscribed
                if api_side.channel_up:
                    break
                await asyncio.sleep(0.05)
            assert api_side.recheck_s == SAFETY_RECHECK_S
            waiting = asyncio.create_task(api_side.wait("claim-1", timeout=5))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            worker_side.notify("claim-1")  # the worker's assessment, after its commit
            return await waiting, time.monotonic() - started

        woken, elapsed = asyncio.run(main())
    finally:
        listener.close()
    assert woken and elapsed < 1
    # Unsubscribed: waiters fall back to re-reading the claim often.
    assert not api_side.channel_up and api_side.recheck_s == FAST_RECHECK_S


def test_a_listener_that_cannot_subscribe_leaves_the_fast_recheck() -> None:
    changes = ClaimChanges()
    listener = DecisionListener("redis://127.0.0.1:1/0", changes).start()  # nothing listens there
    try:
        time.sleep(0.3)
        assert not changes.channel_up and changes.recheck_s == FAST_RECHECK_S
    finally:
        listener.close()


def test_a_publisher_that_fails_still_wakes_this_process() -> None:
    changes = ClaimChanges()

    def broken(claim_id: str) -> None:
        raise ConnectionError("redis is down")

    changes.publish = broken

    async def main() -> bool:
        waiting = asyncio.create_task(changes.wait("c", timeout=2))
        await asyncio.sleep(0.01)
        changes.notify("c")
        return await waiting

    assert asyncio.run(main())
