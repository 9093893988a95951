"""detectors: detector_claims (N detector workers split a tick, one model version each, under a lease)

Revision ID: detectors_0004
Revises: detectors_0003
Create Date: 2026-12-07

Issue 25, item 2: each worker claims a due model version at a tick with ``FOR UPDATE SKIP LOCKED``
and keeps the claim alive with a heartbeat; a dead worker's claim is taken by another.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shiftwatch.db

revision: str = "detectors_0004"
down_revision: str | Sequence[str] | None = "detectors_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "detector_claims",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("tick", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=False),
        sa.Column("heartbeat_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("finished_at", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("model_version_id", name=op.f("pk_detector_claims")),
    )


def downgrade() -> None:
    op.drop_table("detector_claims")
