"""The daily housekeeping job: create upcoming prediction partitions, drop those past retention.

Meant for the scheduler (``shiftwatch.scheduler`` registers :func:`retention_job` once a
day). Only ``predictions`` is touched: labeled samples, alerts, the audit log and tokens
copy what they need from a prediction and hold no foreign key into it, so they outlive it.
With several replicas, a PostgreSQL advisory lock lets one run it per tick; the others skip.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from shiftwatch.collector.partitions import apply_retention, ensure_upcoming_partitions
from shiftwatch.db import Database
from shiftwatch.settings import Settings

# Any constant unique in this project (the migration lock uses 7265110).
RETENTION_LOCK_ID = 7265111


@dataclass(frozen=True, slots=True)
class RetentionRun:
    ran: bool  # False when another replica held the lock
    removed: int  # partitions dropped (PostgreSQL) or rows deleted (SQLite)


def retention_job(db: Database, settings: Settings) -> RetentionRun:
    """Run once per tick across replicas: partitions ahead, then retention."""
    if not db.is_postgres:
        ensure_upcoming_partitions(db.engine, settings.partitions_ahead_days)
        return RetentionRun(ran=True, removed=apply_retention(db.engine, settings.retention_days))
    with db.engine.connect() as lock_connection:
        got = lock_connection.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": RETENTION_LOCK_ID}).scalar_one()
        if not got:
            return RetentionRun(ran=False, removed=0)
        try:
            ensure_upcoming_partitions(db.engine, settings.partitions_ahead_days)
            return RetentionRun(ran=True, removed=apply_retention(db.engine, settings.retention_days))
        finally:
            lock_connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": RETENTION_LOCK_ID})
            lock_connection.commit()
