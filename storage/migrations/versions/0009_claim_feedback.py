"""Satisfaction feedback: one rating (1-5) and an optional comment per closed claim.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 00:30:00

Self-contained (no import of storage.tables), like the earlier revisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "claim_feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.String(36), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_claim_feedback_claim_id_claims")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_feedback")),
        sa.UniqueConstraint("claim_id", name=op.f("uq_claim_feedback_claim_id")),
    )
    op.create_index(op.f("ix_claim_feedback_created_at"), "claim_feedback", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_claim_feedback_created_at"), table_name="claim_feedback")
    op.drop_table("claim_feedback")
