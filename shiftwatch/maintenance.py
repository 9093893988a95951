"""The daily housekeeping job: create upcoming prediction partitions, drop those past retention.

Scheduled hourly in every ``shiftwatch serve`` (``RETENTION_JOB``, from ``jobs``, started by the
app's lifespan when ``scheduler_enabled``); the scheduler's tick claim runs it once per tick across
replicas, and the advisory lock below also covers a manual run racing it. Only ``predictions`` and
the input files no remaining row refers to are deleted: labeled samples, alerts, the audit log and
tokens copy what they need from a prediction and hold no foreign key into it, so they outlive it.
Alert reports under ``data_dir/reports`` fall under the same retention (detectors.report_retention).
With several replicas, a PostgreSQL advisory lock lets one run it per tick; the others skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from shiftwatch.collector.input_retention import sweep_inputs
from shiftwatch.collector.partitions import apply_retention, ensure_upcoming_partitions
from shiftwatch.db import Database
from shiftwatch.scheduler import ScheduledJob
from shiftwatch.settings import Settings

# Any constant unique in this project (the migration lock uses 7265110).
RETENTION_LOCK_ID = 7265111


@dataclass(frozen=True, slots=True)
class RetentionRun:
    ran: bool  # False when another replica held the lock
    removed: int  # partitions dropped (PostgreSQL) or rows deleted (SQLite)
    inputs_removed: int = 0  # stored input files no kept row refers to any more
    reports_removed: int = 0  # alert report files past retention


def retention_job(db: Database, settings: Settings) -> RetentionRun:
    """Run once per tick across replicas: partitions ahead, then retention of predictions and inputs."""
    if not db.is_postgres:
        return _retain(db, settings)
    with db.engine.connect() as lock_connection:
        got = lock_connection.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": RETENTION_LOCK_ID}).scalar_one()
        if not got:
            return RetentionRun(ran=False, removed=0)
        try:
            return _retain(db, settings)
        finally:
            lock_connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": RETENTION_LOCK_ID})
            lock_connection.commit()


def _retain(db: Database, settings: Settings) -> RetentionRun:
    from shiftwatch.db import utcnow
    from shiftwatch.detectors.report_retention import sweep_reports

    ensure_upcoming_partitions(db.engine, settings.partitions_ahead_days)
    removed = apply_retention(db.engine, settings.retention_days)
    # Inputs lose their last reference when predictions go; the sweep (a scan of every input_ref
    # column) runs only then: hourly on SQLite, once a day (a partition dropped) on PostgreSQL.
    inputs = sweep_inputs(db.engine, settings.data_dir, settings.input_orphan_grace_s) if removed else 0
    reports = sweep_reports(db, settings.data_dir, settings.retention_days, utcnow())
    return RetentionRun(ran=True, removed=removed, inputs_removed=inputs, reports_removed=reports)


def _retention_tick(db: Database, settings: Settings, tick: datetime) -> None:
    retention_job(db, settings)


# Hourly: cheap when there is nothing to drop, and partitions ahead are never more than an hour late.
RETENTION_JOB = ScheduledJob("core.retention", 3600, _retention_tick)


def jobs(settings: Settings) -> list[ScheduledJob]:
    """What the app's lifespan schedules for housekeeping when ``scheduler_enabled``."""
    return [RETENTION_JOB]
