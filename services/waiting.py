"""Wake-ups for requests that wait on a claim (`GET /v1/claims/{id}?wait=N`).

The mobile app wants the decision the moment it is made. Polling costs a whole authenticated
request each time and, on a busy server, most of the CPU the decisions need; a waiting request costs
nothing while it waits. The assessment calls `notify` after it commits a decision; a request waiting
in this process wakes at once, and one in an API process waiting on a Celery worker's decision is
woken through Redis (workers.decisions). A wake-up that cannot arrive (another web worker of an
embedded server decided, Redis hiccupped) is covered by the waiter re-reading the claim every
`RECHECK_S`: the database stays the only truth, and a lost wake-up costs at most that long.

Waiting is asynchronous (an `asyncio.Event` per waiter, set from the assessment's thread through the
waiter's event loop), so a thousand waiting phones hold no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

# How often a waiting request re-reads the claim when no wake-up came (another process decided).
RECHECK_S = 0.05


class ClaimChanges:
    """In-process registry of requests waiting for a claim to change.

    `publish`, when set, also tells other processes (a Celery worker sets one that publishes on the
    broker's Redis; the API listens there and wakes its own waiters: workers.decisions)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self.publish: Callable[[str], None] | None = None

    def notify(self, claim_id: str) -> None:
        """Wake every request waiting on `claim_id`: this process's (from any thread) and, through
        `publish`, other processes' (best effort: they re-read every RECHECK_S anyway)."""
        if self.publish is not None:
            try:
                self.publish(claim_id)
            except Exception:
                logger.warning("could not publish the decision of claim %s", claim_id, exc_info=True)
        self.wake(claim_id)

    def wake(self, claim_id: str) -> None:
        """Wake the requests of this process waiting on `claim_id` (from any thread)."""
        with self._lock:
            waiters = list(self._waiting.get(claim_id, ()))
        for loop, event in waiters:
            # RuntimeError: that request's event loop has closed, so there is nobody left to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    async def wait(self, claim_id: str, timeout: float) -> bool:
        """Wait until `notify(claim_id)` or `timeout` seconds; True when woken."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiting.setdefault(claim_id, set()).add(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                entries = self._waiting.get(claim_id)
                if entries is not None:
                    entries.discard(entry)
                    if not entries:
                        del self._waiting[claim_id]

    def waiting(self) -> int:
        """How many requests are waiting now (for tests and metrics)."""
        with self._lock:
            return sum(len(entries) for entries in self._waiting.values())
