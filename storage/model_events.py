"""Model events: the append-only record of every change to the model registry's aliases (who, why,
the gate's table). Rows are only ever added, never changed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.tables import ModelEvent

# The actions that move the champion through the gate (a rollback does not pass the gate).
GATED_ACTIONS = ("promote", "override")


def add(
    session: Session,
    *,
    actor: str,
    action: str,
    version: str,
    previous_version: str | None,
    reason: str | None,
    gate: dict[str, Any] | None = None,
) -> ModelEvent:
    """Add an event and flush it, so a database that is down stops the change before the alias moves."""
    event = ModelEvent(
        actor=actor,
        action=action,
        version=version,
        previous_version=previous_version,
        reason=reason,
        gate=gate,
    )
    session.add(event)
    session.flush()
    return event


def recent(session: Session, *, version: str | None = None, limit: int = 100) -> list[ModelEvent]:
    """The latest events (newest first), of one version if given."""
    query = select(ModelEvent).order_by(ModelEvent.id.desc()).limit(limit)
    if version is not None:
        query = query.where(ModelEvent.version == version)
    return list(session.scalars(query))


def gated(session: Session) -> list[ModelEvent]:
    """Every promotion through the gate (passed or overridden), oldest first."""
    return list(
        session.scalars(
            select(ModelEvent).where(ModelEvent.action.in_(GATED_ACTIONS)).order_by(ModelEvent.id)
        )
    )
