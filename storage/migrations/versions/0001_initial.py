"""Initial schema: users, claims, photos, audit_events (append-only), idempotency_keys.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Self-contained on purpose (no import of storage.tables): a migration must keep creating the schema
it was written for, whatever the models become. Money is NUMERIC(18, 4), and decimal text on
SQLite (see storage.tables.Money). The audit log is append-only at the database level: triggers
refuse UPDATE and DELETE on audit_events.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_MESSAGE = "audit log is append-only"


def _money(scale: int = 4) -> sa.types.TypeEngine:
    return sa.Numeric(18, scale).with_variant(sa.String(40), "sqlite")


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("disabled_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_index("ix_users_key_prefix", "users", ["key_prefix"])

    op.create_table(
        "claims",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("tracking_number", sa.String(64), nullable=False),
        sa.Column("declared_value", _money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("state_changed_at", _ts(), nullable=False),
        sa.Column("decision_due_at", _ts(), nullable=True),
        sa.Column("assessment_count", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=True),
        sa.Column("claim_grade", sa.Integer(), nullable=True),
        sa.Column("claim_probs", sa.JSON(), nullable=True),
        sa.Column("confidence", _money(6), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("offer_expires_at", _ts(), nullable=True),
        sa.Column("accepted_option", sa.String(32), nullable=True),
        sa.Column("payout_amount", _money(), nullable=True),
        sa.Column("row_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_claims"),
        sa.ForeignKeyConstraint(["customer_id"], ["users.id"], name="fk_claims_customer_id_users"),
    )
    op.create_index("ix_claims_customer_id", "claims", ["customer_id"])
    op.create_index("ix_claims_tracking_number", "claims", ["tracking_number"])
    op.create_index("ix_claims_state", "claims", ["state"])
    op.create_index("ix_claims_state_due", "claims", ["state", "decision_due_at"])

    op.create_table(
        "photos",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("claim_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("original_key", sa.String(200), nullable=False),
        sa.Column("derivative_key", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=True),
        sa.Column("grade_probs", sa.JSON(), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("heatmap_key", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_photos"),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name="fk_photos_claim_id_claims"),
        sa.UniqueConstraint("claim_id", "position", name="uq_photos_claim_id_position"),
    )
    op.create_index("ix_photos_claim_id", "photos", ["claim_id"])
    op.create_index("ix_photos_sha256", "photos", ["sha256"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.String(36), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=True),
        sa.Column("reason_codes", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name="fk_audit_events_claim_id_claims"),
    )
    op.create_index("ix_audit_events_claim_id", "audit_events", ["claim_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.Column("claim_id", sa.String(36), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("completed_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_idempotency_keys_user_id_users"),
        sa.UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),
    )

    _create_audit_triggers()


def _create_audit_triggers() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END;"
            )
    elif dialect == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION audit_events_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege';
            END;
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        # TRUNCATE is not a row operation: refuse it with a statement-level trigger.
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"no append-only trigger for dialect {dialect!r}")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_audit_events_claim_id", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_photos_sha256", table_name="photos")
    op.drop_index("ix_photos_claim_id", table_name="photos")
    op.drop_table("photos")
    op.drop_index("ix_claims_state_due", table_name="claims")
    op.drop_index("ix_claims_state", table_name="claims")
    op.drop_index("ix_claims_tracking_number", table_name="claims")
    op.drop_index("ix_claims_customer_id", table_name="claims")
    op.drop_table("claims")
    op.drop_index("ix_users_key_prefix", table_name="users")
    op.drop_table("users")
