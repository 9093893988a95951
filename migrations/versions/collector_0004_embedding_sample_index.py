"""collector: a partial index on predictions that kept their embedding (the embedding detectors' windows)

Revision ID: collector_0004
Revises: collector_0003
Create Date: 2026-12-07

Since SHIFTWATCH_EMBEDDING_KEEP_RATE, most rows store no embedding (NULL costs one bit of the row's
null bitmap); the embedding detectors read the newest rows that kept one, which this index finds
without visiting the rows in between.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "collector_0004"
down_revision: str | Sequence[str] | None = "collector_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On PostgreSQL the index is created on the partitioned table and so on every daily partition.
    kept = sa.text("embedding IS NOT NULL")
    op.create_index(
        "ix_predictions_version_ts_embedded",
        "predictions",
        ["model_version_id", "ts"],
        unique=False,
        postgresql_where=kept,
        sqlite_where=kept,
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_version_ts_embedded", table_name="predictions")
