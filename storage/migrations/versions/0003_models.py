"""Model registry events (append-only) and shadow predictions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:00:00

Self-contained (no import of storage.tables), like 0001 and 0002. `model_events` records every
registration and alias change of the model registry (promote, override, rollback, set_challenger)
with the promotion gate's table; like `audit_events`, triggers refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL). `shadow_predictions` holds what the challenger would have decided on each
claim, next to the champion's decision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_MESSAGE = "model events are append-only"


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("previous_version", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("gate", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_events"),
    )
    op.create_index("ix_model_events_version", "model_events", ["version"])

    op.create_table(
        "shadow_predictions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.String(36), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("champion_version", sa.String(64), nullable=False),
        sa.Column("challenger_version", sa.String(64), nullable=False),
        sa.Column("champion_probs", sa.JSON(), nullable=False),
        sa.Column("challenger_probs", sa.JSON(), nullable=False),
        sa.Column("champion_decision", sa.JSON(), nullable=False),
        sa.Column("challenger_decision", sa.JSON(), nullable=False),
        sa.Column("agree", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shadow_predictions"),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name="fk_shadow_predictions_claim_id_claims"),
    )
    op.create_index("ix_shadow_predictions_claim_id", "shadow_predictions", ["claim_id"])
    op.create_index("ix_shadow_predictions_challenger_version", "shadow_predictions", ["challenger_version"])

    _create_model_event_triggers()


def _create_model_event_triggers() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER model_events_no_{verb.lower()} BEFORE {verb} ON model_events "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END;"
            )
    elif dialect == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION model_events_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege';
            END;
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER model_events_append_only BEFORE UPDATE OR DELETE ON model_events "
            "FOR EACH ROW EXECUTE FUNCTION model_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER model_events_no_truncate BEFORE TRUNCATE ON model_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION model_events_append_only()"
        )
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"no append-only trigger for dialect {dialect!r}")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS model_events_no_truncate ON model_events")
        op.execute("DROP TRIGGER IF EXISTS model_events_append_only ON model_events")
        op.execute("DROP FUNCTION IF EXISTS model_events_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS model_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS model_events_no_delete")
    op.drop_index("ix_shadow_predictions_challenger_version", table_name="shadow_predictions")
    op.drop_index("ix_shadow_predictions_claim_id", table_name="shadow_predictions")
    op.drop_table("shadow_predictions")
    op.drop_index("ix_model_events_version", table_name="model_events")
    op.drop_table("model_events")
