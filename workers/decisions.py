"""Decisions announced across processes: a Celery worker that decides a claim publishes its id on the
broker's Redis; each API process listens and wakes the requests waiting on that claim
(`GET /v1/claims/{id}?wait=`, services.waiting). Without it those requests would still see the
decision, by re-reading the claim every 50 ms: this makes them hear it at once, and lets them re-read
only every second (a safety net) while the subscription is up.

Best effort by design: a message lost while an API process reconnects costs a waiter at most one
re-read interval; nothing is decided or stored through this channel.
"""

from __future__ import annotations

import logging
import threading

import redis

from services.waiting import ClaimChanges

logger = logging.getLogger(__name__)

CHANNEL = "claimlane:claim-decided"


def publisher(url: str):
    """A `ClaimChanges.publish` for a worker: PUBLISH the claim id on CHANNEL."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)

    def publish(claim_id: str) -> None:
        client.publish(CHANNEL, claim_id)

    return publish


class DecisionListener:
    """A daemon thread of the API process: SUBSCRIBE to CHANNEL and wake this process's waiters;
    reconnects after an error, stops with `close()`."""

    def __init__(self, url: str, changes: ClaimChanges) -> None:
        self.url = url
        self.changes = changes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claimlane-decisions", daemon=True)

    def start(self) -> DecisionListener:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                try:
                    self.changes.channel_up = True
                    while not self._stop.is_set():
                        message = pubsub.get_message(timeout=1.0)
                        if message and message.get("type") == "message":
                            data = message["data"]
                            self.changes.wake(data.decode() if isinstance(data, bytes) else str(data))
                finally:
                    self.changes.channel_up = False
                    pubsub.close()
                    client.close()
            except Exception:
                if not self._stop.is_set():
                    logger.warning(
                        "decision channel unavailable; waiting requests re-read instead", exc_info=True
                    )
                    self._stop.wait(2.0)
