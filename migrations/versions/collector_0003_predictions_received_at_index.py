"""collector: index predictions on (model_version_id, received_at) for the detectors' freshness checks

Revision ID: collector_0003
Revises: collector_0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "collector_0003"
down_revision: str | Sequence[str] | None = "collector_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On PostgreSQL the index is created on the partitioned table and so on every daily partition.
    op.create_index(
        "ix_predictions_version_received_at", "predictions", ["model_version_id", "received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_version_received_at", table_name="predictions")
