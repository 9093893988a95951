"""scheduler: job_ticks (one claim per job and tick across replicas)

Revision ID: scheduler_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shiftwatch.db

revision: str = "scheduler_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("scheduler",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_ticks",
        sa.Column("job_name", sa.String(length=100), nullable=False),
        sa.Column("tick", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job_name", "tick", name=op.f("pk_job_ticks")),
    )


def downgrade() -> None:
    op.drop_table("job_ticks")
