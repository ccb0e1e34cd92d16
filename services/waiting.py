"""Wake-ups for requests that wait on a claim (`GET /v1/claims/{id}?wait=N`).

The mobile app wants the decision the moment it is made. Polling costs a whole authenticated
request each time and, on a busy server, most of the CPU the decisions need; a waiting request costs
nothing while it waits. The assessment calls `notify` after it commits a decision; a request waiting
in this process wakes at once; one in another API process of the same embedded server (several web
workers) is woken through a local datagram socket (`LocalWakeups`), and one waiting on a Celery
worker's decision through Redis (workers.decisions). The waiter also re-reads the claim every
`ClaimChanges.recheck_s`: every `FAST_RECHECK_S` while a decision could be made where no wake-up
reaches it (no channel, or the channel is down), otherwise every `SAFETY_RECHECK_S`, so a lost
wake-up costs at most that long. The database stays the only truth. (Re-reading every 50 ms for
every waiting phone cost about a tenth of the server's CPU under load, hence the channels.)

Waiting is asynchronous (an `asyncio.Event` per waiter, set from the assessment's thread through the
waiter's event loop), so a thousand waiting phones hold no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

# How often a waiting request re-reads the claim when no wake-up came: FAST while a decision may be
# made where no wake-up reaches the waiter, SAFETY while every decider's wake-ups arrive.
FAST_RECHECK_S = 0.05
SAFETY_RECHECK_S = 1.0


class ClaimChanges:
    """In-process registry of requests waiting for a claim to change.

    `publish`, when set, also tells other processes (a Celery worker sets one that publishes on the
    broker's Redis; the API listens there and wakes its own waiters: workers.decisions)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self.publish: Callable[[str], None] | None = None
        # True while a channel carries every other decider's wake-ups to this process (set by
        # LocalWakeups and by the Celery decision listener while subscribed).
        self.channel_up = False

    @property
    def recheck_s(self) -> float:
        """How long a waiter may wait between re-reads of the claim (see the module docstring)."""
        return SAFETY_RECHECK_S if self.channel_up else FAST_RECHECK_S

    def notify(self, claim_id: str) -> None:
        """Wake every request waiting on `claim_id`: this process's (from any thread) and, through
        `publish`, other processes' (best effort: they re-read every `recheck_s` anyway)."""
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


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


class LocalWakeups:
    """Wake-ups between the API processes of one embedded server (`claimlane serve` with several web
    workers): each process binds a Unix datagram socket in a folder named after the data folder;
    a decision is announced by one datagram (the claim id) to every other socket there, read on the
    process's event loop. Best effort like every wake-up: a full buffer or a dead process loses the
    datagram, and the waiter's re-read covers it.

    The folder is under the temporary directory (a socket path must stay under 108 bytes), private
    to this user; a process killed without closing leaves its socket, which the next sender removes
    when the kernel refuses the datagram."""

    def __init__(self, data_dir: str | os.PathLike[str], changes: ClaimChanges) -> None:
        key = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
        self.folder = Path(tempfile.gettempdir()) / f"claimlane-{_uid()}-{key}"
        self.changes = changes
        # Unique per app, not only per process (tests run several apps in one process).
        self.path = self.folder / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Listen on `loop` and announce this process's decisions; False (logged) when the socket
        cannot be made, in which case waiters keep re-reading every FAST_RECHECK_S."""
        if not hasattr(socket, "AF_UNIX"):
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # Twice: the last process of a server stopping may remove the folder between our
            # mkdir and bind.
            for attempt in (1, 2):
                try:
                    self.folder.mkdir(mode=0o700, exist_ok=True)
                    if self.folder.stat().st_uid != _uid():
                        raise PermissionError(f"{self.folder} belongs to another user")
                    sock.bind(str(self.path))
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
        except OSError as exc:
            sock.close()
            logger.warning("no wake-ups between API processes (%s); waiting requests re-read instead", exc)
            return False
        self._sock, self._loop = sock, loop
        loop.add_reader(sock.fileno(), self._receive)
        self.changes.publish = self.publish
        self.changes.channel_up = True
        return True

    def _receive(self) -> None:
        """Every datagram waiting on the socket (the event loop calls this when it is readable)."""
        sock = self._sock
        if sock is None:
            return
        while True:
            try:
                data = sock.recv(256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                logger.warning("wake-up socket failed", exc_info=True)
                return
            self.changes.wake(data.decode("ascii", "replace"))

    def publish(self, claim_id: str) -> None:
        """Send `claim_id` to every other API process of this server (from any thread)."""
        sock = self._sock
        if sock is None:
            return
        message = claim_id.encode("ascii", "replace")
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return
        own = str(self.path)
        for entry in entries:
            if not entry.name.endswith(".sock") or entry.path == own:
                continue
            try:
                sock.sendto(message, entry.path)
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):  # its process is gone
                    os.unlink(entry.path)
            except OSError:
                pass  # a full buffer: that process's waiters re-read

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self.changes.channel_up = False
        self.changes.publish = None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):  # the last process of the server leaves no folder either
            self.folder.rmdir()
