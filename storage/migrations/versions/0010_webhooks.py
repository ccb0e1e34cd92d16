"""Webhooks: endpoints integrations register, the outbox of status-change messages, and the
delivery log.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 02:30:00

Self-contained (no import of storage.tables), like the earlier revisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_webhook_endpoints_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(op.f("ix_webhook_endpoints_owner_id"), "webhook_endpoints", ["owner_id"])
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("audit_event_id", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_messages_endpoint_id_webhook_endpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["audit_event_id"],
            ["audit_events.id"],
            name=op.f("fk_webhook_messages_audit_event_id_audit_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_messages")),
    )
    op.create_index(op.f("ix_webhook_messages_endpoint_id"), "webhook_messages", ["endpoint_id"])
    op.create_index(op.f("ix_webhook_messages_audit_event_id"), "webhook_messages", ["audit_event_id"])
    op.create_index("ix_webhook_messages_due", "webhook_messages", ["state", "next_attempt_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["webhook_messages.id"],
            name=op.f("fk_webhook_attempts_message_id_webhook_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index(op.f("ix_webhook_attempts_message_id"), "webhook_attempts", ["message_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_attempts_message_id"), table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_messages_due", table_name="webhook_messages")
    op.drop_index(op.f("ix_webhook_messages_audit_event_id"), table_name="webhook_messages")
    op.drop_index(op.f("ix_webhook_messages_endpoint_id"), table_name="webhook_messages")
    op.drop_table("webhook_messages")
    op.drop_index(op.f("ix_webhook_endpoints_owner_id"), table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
