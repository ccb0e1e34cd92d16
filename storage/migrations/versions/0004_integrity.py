"""Claim integrity: shipments, perceptual hashes, photo facts, one open claim per customer and parcel.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 00:00:00

Self-contained (no import of storage.tables), like the earlier revisions.
- `shipments`: the carrier's record of a parcel (declared value, delivery), pushed by integrations.
- `photo_hashes`: each photo's perceptual hashes with four indexed 16-bit segments (multi-index
  hashing), so reused photos are found without scanning.
- `photos`: EXIF capture time, camera, screenshot flag. `claims.claimed_value`: what the app sent.
- `ux_claims_open_parcel`: a partial unique index, one open claim per (customer, tracking number),
  on both SQLite and PostgreSQL. Existing duplicates (filed before this rule) would make it fail; the
  upgrade closes nothing on its own, so such data must be cleaned by a person first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "state NOT IN ('denied', 'payout_instructed')"


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def _money(scale: int = 4) -> sa.types.TypeEngine:
    return sa.Numeric(18, scale).with_variant(sa.String(40), "sqlite")


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("tracking_number", sa.String(64), nullable=False),
        sa.Column("sender_ref", sa.String(120), nullable=True),
        sa.Column("recipient_ref", sa.String(120), nullable=True),
        sa.Column("declared_value", _money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("service", sa.String(40), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("shipped_at", _ts(), nullable=True),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tracking_number", name="pk_shipments"),
    )
    op.create_table(
        "photo_hashes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("photo_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("s0", sa.Integer(), nullable=False),
        sa.Column("s1", sa.Integer(), nullable=False),
        sa.Column("s2", sa.Integer(), nullable=False),
        sa.Column("s3", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], name="fk_photo_hashes_photo_id_photos"),
        sa.PrimaryKeyConstraint("id", name="pk_photo_hashes"),
    )
    op.create_index("ix_photo_hashes_photo_id", "photo_hashes", ["photo_id"])
    for column in ("s0", "s1", "s2", "s3"):
        # (segment, kind, value): the multi-index look-up reads these indexes alone.
        op.create_index(f"ix_photo_hashes_{column}", "photo_hashes", [column, "kind", "value"])

    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("taken_at", _ts(), nullable=True))
        batch.add_column(sa.Column("taken_zone_known", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("camera", sa.String(120), nullable=True))
        batch.add_column(sa.Column("screenshot", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("mirror_hash", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("claims") as batch:
        batch.add_column(sa.Column("claimed_value", _money(), nullable=True))
    op.create_index(
        "ux_claims_open_parcel",
        "claims",
        ["customer_id", "tracking_number"],
        unique=True,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )


def downgrade() -> None:
    op.drop_index("ux_claims_open_parcel", table_name="claims")
    with op.batch_alter_table("claims") as batch:
        batch.drop_column("claimed_value")
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("mirror_hash")
        batch.drop_column("screenshot")
        batch.drop_column("camera")
        batch.drop_column("taken_zone_known")
        batch.drop_column("taken_at")
    for column in ("photo_id", "s0", "s1", "s2", "s3"):
        op.drop_index(f"ix_photo_hashes_{column}", table_name="photo_hashes")
    op.drop_table("photo_hashes")
    op.drop_table("shipments")
