"""rollout: canary_key_counts (the client keys each gateway has seen of a canary)

Revision ID: rollout_0002
Revises: rollout_0001
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shiftwatch.db

revision: str = "rollout_0002"
down_revision: str | Sequence[str] | None = "rollout_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canary_key_counts",
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("replica", sa.String(length=200), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("keys_seen", sa.Integer(), nullable=False),
        sa.Column("keys_in_canary", sa.Integer(), nullable=False),
        sa.Column("keys_hashed_in", sa.Integer(), nullable=False),
        sa.Column("updated_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"], ["rollouts.id"], name=op.f("fk_canary_key_counts_rollout_id_rollouts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("rollout_id", "replica", name=op.f("pk_canary_key_counts")),
    )


def downgrade() -> None:
    op.drop_table("canary_key_counts")
