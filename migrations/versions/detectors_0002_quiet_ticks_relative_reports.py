"""detectors: what a run tested (data watermark, test key), a config's last quiet check, report paths relative to DATA_DIR

Revision ID: detectors_0002
Revises: detectors_0001
Create Date: 2026-12-02

A tick whose window holds no prediction received since the last run records "no new data"
on the config instead of writing a run (issue 17). ``alerts.report_path`` was an absolute
path; reports only ever live in ``DATA_DIR/reports``, so existing rows become
``reports/<file name>`` and survive a moved or restored data directory.
"""

from collections.abc import Sequence
from pathlib import PurePosixPath, PureWindowsPath

import sqlalchemy as sa
from alembic import op

import shiftwatch.db

revision: str = "detectors_0002"
down_revision: str | Sequence[str] | None = "detectors_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _relative(path: str) -> str:
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    return f"reports/{name}"


def upgrade() -> None:
    with op.batch_alter_table("drift_runs") as batch:
        batch.add_column(sa.Column("data_watermark", shiftwatch.db.UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("test_key", sa.String(length=64), nullable=True))
    with op.batch_alter_table("detector_configs") as batch:
        batch.add_column(sa.Column("checked_at", shiftwatch.db.UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("check_note", sa.String(length=200), nullable=True))
    connection = op.get_bind()
    alerts = sa.table("alerts", sa.column("id", sa.Integer()), sa.column("report_path", sa.String()))
    rows = connection.execute(sa.select(alerts.c.id, alerts.c.report_path).where(alerts.c.report_path.is_not(None)))
    for alert_id, path in rows.all():
        if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
            connection.execute(alerts.update().where(alerts.c.id == alert_id).values(report_path=_relative(path)))


def downgrade() -> None:
    with op.batch_alter_table("detector_configs") as batch:
        batch.drop_column("check_note")
        batch.drop_column("checked_at")
    with op.batch_alter_table("drift_runs") as batch:
        batch.drop_column("test_key")
        batch.drop_column("data_watermark")
