"""Human review: deadlines, leases and decisions on claims; review_decisions, photo_labels, case_notes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-01 00:00:00

Self-contained (no import of storage.tables), like 0001. The new claim columns are added in batch
mode, which on SQLite recreates the table (foreign keys are off meanwhile, see storage.db.migrate) and
on PostgreSQL is a plain ALTER TABLE. `watch` is NOT NULL with a server default of false, so existing
claims get a value.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _money(scale: int = 4) -> sa.types.TypeEngine:
    return sa.Numeric(18, scale).with_variant(sa.String(40), "sqlite")


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("entered_review_at", _ts(), nullable=True))
        batch.add_column(sa.Column("first_response_due_at", _ts(), nullable=True))
        batch.add_column(sa.Column("lease_holder_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", _ts(), nullable=True))
        batch.add_column(sa.Column("watch", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("decided_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("decided_at", _ts(), nullable=True))
        batch.create_foreign_key("fk_claims_lease_holder_id_users", "users", ["lease_holder_id"], ["id"])
        batch.create_foreign_key("fk_claims_decided_by_id_users", "users", ["decided_by_id"], ["id"])

    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.String(36), nullable=False),
        sa.Column("adjuster_id", sa.Integer(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("amount", _money(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("model_grade", sa.Integer(), nullable=True),
        sa.Column("model_probs", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_review_decisions"),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name="fk_review_decisions_claim_id_claims"),
        sa.ForeignKeyConstraint(["adjuster_id"], ["users.id"], name="fk_review_decisions_adjuster_id_users"),
    )
    op.create_index("ix_review_decisions_claim_id", "review_decisions", ["claim_id"])

    op.create_table(
        "photo_labels",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.String(36), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("adjuster_id", sa.Integer(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_photo_labels"),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["review_decisions.id"], name="fk_photo_labels_decision_id_review_decisions"
        ),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name="fk_photo_labels_photo_id_photos"),
        sa.ForeignKeyConstraint(["adjuster_id"], ["users.id"], name="fk_photo_labels_adjuster_id_users"),
        sa.UniqueConstraint("decision_id", "photo_id", name="uq_photo_labels_decision_id_photo_id"),
        sa.CheckConstraint("grade >= 0 AND grade <= 3", name="ck_photo_labels_grade_range"),
    )
    op.create_index("ix_photo_labels_decision_id", "photo_labels", ["decision_id"])
    op.create_index("ix_photo_labels_photo_id", "photo_labels", ["photo_id"])

    op.create_table(
        "case_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.String(36), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_notes"),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name="fk_case_notes_claim_id_claims"),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name="fk_case_notes_author_id_users"),
    )
    op.create_index("ix_case_notes_claim_id", "case_notes", ["claim_id"])


def downgrade() -> None:
    op.drop_index("ix_case_notes_claim_id", table_name="case_notes")
    op.drop_table("case_notes")
    op.drop_index("ix_photo_labels_photo_id", table_name="photo_labels")
    op.drop_index("ix_photo_labels_decision_id", table_name="photo_labels")
    op.drop_table("photo_labels")
    op.drop_index("ix_review_decisions_claim_id", table_name="review_decisions")
    op.drop_table("review_decisions")
    with op.batch_alter_table("claims") as batch:
        batch.drop_constraint("fk_claims_decided_by_id_users", type_="foreignkey")
        batch.drop_constraint("fk_claims_lease_holder_id_users", type_="foreignkey")
        batch.drop_column("decided_at")
        batch.drop_column("decided_by_id")
        batch.drop_column("watch")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_holder_id")
        batch.drop_column("first_response_due_at")
        batch.drop_column("entered_review_at")
