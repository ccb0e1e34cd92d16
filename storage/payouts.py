"""The payout outbox (`storage.tables.PayoutInstruction`): the queries behind instructing, listing,
exporting and confirming payouts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import metering
from storage.tables import PayoutInstruction


def add(
    session: Session,
    *,
    claim_id: str,
    customer_id: int,
    option: str,
    amount: Decimal | None,
    currency: str,
    now: datetime,
) -> PayoutInstruction:
    row = PayoutInstruction(
        claim_id=claim_id,
        customer_id=customer_id,
        option=option,
        amount=amount,
        currency=currency,
        created_at=now,
    )
    session.add(row)
    metering.on_commit(session, metering.payout_effect(currency, option, amount))
    return row


def get(session: Session, payout_id: int) -> PayoutInstruction | None:
    return session.get(PayoutInstruction, payout_id)


def page(session: Session, *, paid: bool | None, after_id: int, limit: int) -> Sequence[PayoutInstruction]:
    """Instructions in the order they were made (by id), after `after_id`; only paid or unpaid ones
    when `paid` says so."""
    statement = select(PayoutInstruction).where(PayoutInstruction.id > after_id)
    if paid is not None:
        statement = statement.where(
            PayoutInstruction.paid_at.is_not(None) if paid else PayoutInstruction.paid_at.is_(None)
        )
    return session.scalars(statement.order_by(PayoutInstruction.id).limit(limit)).all()
