"""labeling: retired labels (given under a label definition that has since changed)

Revision ID: labeling_0002
Revises: labeling_0001
Create Date: 2026-12-07

``shiftwatch labeling retire`` marks labels superseded when a team changes what a class means
(issue 31): they stay for audit and leave training and every labeled accuracy.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shiftwatch.db

revision: str = "labeling_0002"
down_revision: str | Sequence[str] | None = "labeling_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("labels") as batch:
        batch.add_column(sa.Column("retired_at", shiftwatch.db.UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("retired_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("labels") as batch:
        batch.drop_column("retired_reason")
        batch.drop_column("retired_at")
