"""collector: prediction_ids, the id-only idempotency key across predictions' daily partitions

Revision ID: collector_0002
Revises: collector_0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shiftwatch.db

revision: str = "collector_0002"
down_revision: str | Sequence[str] | None = "collector_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prediction_ids",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ts", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_ids")),
    )
    op.create_index("ix_prediction_ids_ts", "prediction_ids", ["ts"], unique=False, postgresql_using="brin")
    # Ids stored before this table existed: the earliest ts wins where the old (id, ts) key let an id in twice.
    op.execute("INSERT INTO prediction_ids (id, ts) SELECT id, MIN(ts) FROM predictions GROUP BY id")


def downgrade() -> None:
    op.drop_index("ix_prediction_ids_ts", table_name="prediction_ids")
    op.drop_table("prediction_ids")
