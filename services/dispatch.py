"""What a use case needs from the task runner: a way to hand over a committed claim.

The protocol lives here, below both its callers (the services that enqueue after a commit) and its
implementations (`workers.dispatch`: a thread pool in the API process, or Celery), so the services
never import `workers` and the workers never import `api`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Dispatcher(Protocol):
    def enqueue_assessment(self, claim_id: str) -> None:
        """Schedule the assessment of a committed claim; returns at once."""
        ...

    def shutdown(self) -> None:
        """Stop accepting work and release resources (called at API shutdown)."""
        ...
