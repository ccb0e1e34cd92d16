"""Photos keep the model's damage map, so heatmaps are rendered on first view, not before a decision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 12:00:00

Self-contained, like the earlier revisions. Existing photos keep their rendered heatmaps (their
`heatmap_key` objects) and have no map; new assessments store the map and render on demand.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("damage_map", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("damage_map")
