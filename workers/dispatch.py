"""How the API hands a committed claim to the assessment: a thread pool in the API process (the
embedded default) or a Celery task through the broker. Both take the claim id only; the worker reads
everything else from the database, so a message never carries stale claim data.

The API enqueues only after the claim's transaction has committed (a worker must find the claim). A
lost enqueue (broker down between commit and enqueue) is repaired by the stale-claim sweeper in
`workers.tasks`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from config.logs import TASK_REQUEST_ID_HEADER, request_id_var
from services.context import Services
from services.dispatch import Dispatcher
from workers.assessment import assess_claim

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

TASK_NAME = "claimlane.assess_claim"


class InProcessDispatcher:
    """Assess claims on a small thread pool inside the API process (embedded mode).

    ONNX Runtime and image decoding release the GIL, so a couple of threads overlap well with the
    request handlers. Work is lost if the process dies; the stale-claim sweeper (or the next start)
    re-enqueues claims left in submitted/assessing.
    """

    def __init__(self, services: Services, max_workers: int = 2) -> None:
        self.services = services
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="claimlane-assess")
        self._lock = threading.Lock()
        self._pending: set[Future[str]] = set()
        self._closed = False

    def enqueue_assessment(self, claim_id: str) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("dispatcher is shut down")
            # In a copy of the caller's context: the assessment's log lines carry the upload's request id.
            future = self._executor.submit(contextvars.copy_context().run, self._run, claim_id)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _run(self, claim_id: str) -> str:
        try:
            outcome = assess_claim(self.services, claim_id)
        except Exception:
            # Nothing was written (see workers.assessment); the sweeper retries the claim later.
            logger.exception("assessment of claim %s failed", claim_id)
            raise
        logger.info("assessment of claim %s: %s", claim_id, outcome)
        return outcome

    def _done(self, future: Future[str]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every submitted assessment has finished; False if `timeout` ran out first."""
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return True
        _, not_done = wait(pending, timeout=timeout)
        return not not_done

    def shutdown(self, wait_for_work: bool = True) -> None:
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=wait_for_work, cancel_futures=not wait_for_work)


class CeleryDispatcher:
    """Publish ``claimlane.assess_claim`` to the broker; a Celery worker runs it.

    By default through `workers.tasks.assess_claim_task` on the app configured from the environment;
    `app` and `queue` let a caller (tests) publish through another broker or queue.
    """

    def __init__(
        self, services: Services | None = None, *, app: Celery | None = None, queue: str | None = None
    ) -> None:
        self.services = services
        self.app = app
        self.queue = queue

    def enqueue_assessment(self, claim_id: str) -> None:
        options: dict[str, object] = {"queue": self.queue} if self.queue else {}
        request_id = request_id_var.get()
        if request_id:  # the task's log lines carry the upload's request id (workers.tasks)
            options["headers"] = {TASK_REQUEST_ID_HEADER: request_id}
        if self.app is not None:
            self.app.send_task(TASK_NAME, args=[str(claim_id)], **options)
            return
        from workers.tasks import assess_claim_task  # imports the Celery app only when used

        assess_claim_task.apply_async(args=[str(claim_id)], **options)

    def shutdown(self) -> None:
        pass


def make_dispatcher(services: Services) -> Dispatcher:
    """The dispatcher `services.settings.task_runner` asks for."""
    if services.settings.task_runner == "celery":
        return CeleryDispatcher(services)
    return InProcessDispatcher(services)
