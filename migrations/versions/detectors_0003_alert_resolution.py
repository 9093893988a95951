"""detectors: an alert's resolution note (who or what resolved it, and why: e.g. the promotion that replaced its version)

Revision ID: detectors_0003
Revises: detectors_0002
Create Date: 2026-12-07

When a rollout promotes a new version, the retired version's open alerts are resolved by the
promotion (issue 23, item 9); the note says which rollout and links to it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "detectors_0003"
down_revision: str | Sequence[str] | None = "detectors_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("resolution", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("resolution")
