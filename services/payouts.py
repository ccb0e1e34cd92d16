"""Payout instructions for the finance system: an outbox, one row per claim.

`instruct` is called in the same transaction as the move to `payout_instructed` (an accepted offer,
an adjuster's approval), so an instruction exists exactly when the claim says its payout was
instructed; the unique claim id refuses a second one whatever retries and races happen (the claim's
optimistic lock already makes the second transaction fail first). Finance reads the outbox as JSON
pages or CSV and confirms each payment once (`mark_paid`, idempotent for the same payment reference).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from claims.errors import Conflict, NotFound, Unprocessable
from claims.lifecycle import Actor
from claims.money import amount_text
from storage import payouts as rows
from storage.tables import Claim, PayoutInstruction, User
from storage.transitions import append_note

Status = Literal["pending", "paid"]
MAX_PAGE = 500
CSV_COLUMNS = (
    "id",
    "claim_id",
    "customer_id",
    "option",
    "amount",
    "currency",
    "created_at",
    "paid_at",
    "payment_ref",
)


def instruct(session: Session, claim: Claim, now: datetime) -> PayoutInstruction:
    """The outbox row for `claim`, whose payout is being instructed in this transaction."""
    return rows.add(
        session,
        claim_id=claim.id,
        customer_id=claim.customer_id,
        option=claim.accepted_option or "cash",
        amount=claim.payout_amount,
        currency=claim.currency,
        now=now,
    )


def amount_of(row: PayoutInstruction) -> str | None:
    """The amount as exact decimal text in the currency's minor units (None for a reshipment)."""
    return amount_text(row.amount, row.currency)


def _paid(status: Status | None) -> bool | None:
    return None if status is None else status == "paid"


def list_page(
    session: Session, status: Status | None, after_id: int, limit: int
) -> tuple[list[PayoutInstruction], int | None]:
    """A page of instructions in the order they were made; the id to continue after, or None."""
    if not 1 <= limit <= MAX_PAGE:
        raise Unprocessable(f"limit must be 1 to {MAX_PAGE}, got {limit}", code="validation_error")
    page = list(rows.page(session, paid=_paid(status), after_id=after_id, limit=limit + 1))
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].id if more and page else None)


def export_csv(session: Session, status: Status | None) -> str:
    """Every instruction (of `status`) as CSV for the finance system; amounts as exact decimal text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    after = 0
    while True:
        page = rows.page(session, paid=_paid(status), after_id=after, limit=MAX_PAGE)
        for p in page:
            writer.writerow(
                [
                    p.id,
                    p.claim_id,
                    p.customer_id,
                    p.option,
                    amount_of(p) or "",
                    p.currency,
                    p.created_at.isoformat(),
                    p.paid_at.isoformat() if p.paid_at else "",
                    p.payment_ref or "",
                ]
            )
        if len(page) < MAX_PAGE:
            return out.getvalue()
        after = page[-1].id


def mark_paid(
    session: Session, payout_id: int, user: User, payment_ref: str, now: datetime
) -> tuple[PayoutInstruction, bool]:
    """Record that finance paid instruction `payout_id` under `payment_ref`; (row, changed). The same
    reference again changes nothing (a retry); another reference is refused. The claim's audit log
    records the payment; committed here."""
    ref = payment_ref.strip()
    if not ref or len(ref) > 100 or not ref.isprintable():
        raise Unprocessable("payment_ref must be 1 to 100 printable characters", code="validation_error")
    row = rows.get(session, payout_id)
    if row is None:
        raise NotFound("no such payout instruction")
    if row.paid_at is not None:
        if row.payment_ref == ref:
            return row, False
        raise Conflict(
            f"this payout was already marked paid (reference {row.payment_ref})", code="payout_already_paid"
        )
    row.paid_at, row.payment_ref, row.paid_by_id = now, ref, user.id
    claim = session.get(Claim, row.claim_id)
    assert claim is not None  # a foreign key
    append_note(
        session,
        claim,
        Actor.SYSTEM,
        None,
        "payout_paid",
        {"payment_ref": ref, "confirmed_by": f"{user.role}:{user.id}", "payout_id": row.id},
        now=now,
    )
    session.commit()
    return row, True
