"""The payout outbox for the finance system: one instruction per claim, written with the state change.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 23:58:00

Self-contained (no import of storage.tables), like the earlier revisions. Claims already in
payout_instructed get their instruction here, so the outbox starts complete.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _money() -> sa.types.TypeEngine:
    """NUMERIC(18, 4), and decimal text on SQLite (see storage.tables.Money)."""
    return sa.Numeric(18, 4).with_variant(sa.String(40), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payout_instructions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("option", sa.String(32), nullable=False),
        sa.Column("amount", _money(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("paid_at", _ts(), nullable=True),
        sa.Column("payment_ref", sa.String(100), nullable=True),
        sa.Column("paid_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_payout_instructions_claim_id_claims")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["users.id"], name=op.f("fk_payout_instructions_customer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["paid_by_id"], ["users.id"], name=op.f("fk_payout_instructions_paid_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_instructions")),
        sa.UniqueConstraint("claim_id", name=op.f("uq_payout_instructions_claim_id")),
    )
    op.create_index(op.f("ix_payout_instructions_created_at"), "payout_instructions", ["created_at"])
    op.execute(
        "INSERT INTO payout_instructions (claim_id, customer_id, option, amount, currency, created_at) "
        "SELECT id, customer_id, COALESCE(accepted_option, 'cash'), payout_amount, currency, "
        "COALESCE(decided_at, state_changed_at) FROM claims WHERE state = 'payout_instructed'"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_payout_instructions_created_at"), table_name="payout_instructions")
    op.drop_table("payout_instructions")
