"""Shipment rows: the carrier's record of each parcel (`storage.tables.Shipment`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.tables import Shipment

# The fields an upsert sets (everything but the key and the bookkeeping).
FIELDS = (
    "sender_ref",
    "recipient_ref",
    "declared_value",
    "currency",
    "service",
    "status",
    "shipped_at",
    "delivered_at",
)


def get(session: Session, tracking_number: str) -> Shipment | None:
    return session.get(Shipment, tracking_number)


def get_for_update(session: Session, tracking_number: str) -> Shipment | None:
    """The shipment, row-locked on PostgreSQL, so two upserts of one parcel serialise."""
    return session.scalars(
        select(Shipment)
        .where(Shipment.tracking_number == tracking_number)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def upsert(
    session: Session, tracking_number: str, values: Mapping[str, Any], *, actor: str, now: datetime
) -> tuple[Shipment, bool, bool]:
    """Create or replace the shipment's fields (in the session, not committed).

    Returns (shipment, created, changed): `changed` is False when the record already said exactly
    this, so a repeated PUT is a no-op."""
    shipment = get_for_update(session, tracking_number)
    if shipment is None:
        shipment = Shipment(
            tracking_number=tracking_number, created_at=now, updated_at=now, updated_by=actor, **values
        )
        session.add(shipment)
        return shipment, True, True
    changed = any(getattr(shipment, name) != values.get(name) for name in FIELDS)
    if changed:
        for name in FIELDS:
            setattr(shipment, name, values.get(name))
        shipment.updated_at = now
        shipment.updated_by = actor
    return shipment, False, changed
