"""The retention job drops old predictions only: every other table (tokens, models, and the labeled
samples, alerts and audit log of the other domains once merged) keeps every row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from shiftwatch.db import Base, import_all_tables
from shiftwatch.maintenance import RETENTION_LOCK_ID, RetentionRun, retention_job
from shiftwatch.tokens import create_token
from tests.support.collector import records, store_predictions
from tests.support.pg_processes import stored_count


def row_counts(db) -> dict[str, int]:
    import_all_tables()
    with db.session() as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)))
            for table in Base.metadata.sorted_tables
            if table.name not in ("predictions", "prediction_ids")  # the ids go with their predictions
        }


def test_retention_job_keeps_everything_but_old_predictions(db, settings, digits_model):
    now = datetime.now(UTC)
    old = records(25, ts=now - timedelta(days=settings.retention_days + 2), seed=1)
    store_predictions(db, settings.model_copy(update={"retention_days": settings.retention_days + 5}), old)
    store_predictions(db, settings, records(15, ts=now - timedelta(minutes=5), seed=2))
    create_token(db, "auditor", ["read"])
    before = row_counts(db)
    assert before["api_tokens"] == 1 and before["model_versions"] == 1

    run = retention_job(db, settings)

    assert run.ran and run.removed >= 1
    assert stored_count(db) == 15
    assert row_counts(db) == before
    with db.session() as session:
        assert session.scalar(text("SELECT count(*) FROM prediction_ids")) == 15


def test_second_replica_skips_while_one_holds_the_lock(db, settings):
    if not db.is_postgres:
        assert retention_job(db, settings).ran  # one process, no lock needed
        return
    with db.engine.connect() as other_replica:
        other_replica.execute(text("SELECT pg_advisory_lock(:id)"), {"id": RETENTION_LOCK_ID})
        try:
            assert retention_job(db, settings) == RetentionRun(ran=False, removed=0)
        finally:
            other_replica.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": RETENTION_LOCK_ID})
            other_replica.commit()
    assert retention_job(db, settings).ran


def test_no_table_holds_a_foreign_key_into_predictions():
    # Retention drops whole partitions and a distributed PostgreSQL (Citus) shards predictions by
    # model version: a foreign key into predictions would block both. Copy prediction_id + ts instead.
    import_all_tables()
    pointing_in = [
        f"{table.name}.{fk.parent.name}"
        for table in Base.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column.table.name == "predictions"
    ]
    assert pointing_in == []


def test_retention_is_a_scheduled_job_that_runs_once_per_tick(db, settings):
    from shiftwatch.maintenance import RETENTION_JOB
    from shiftwatch.scheduler import bind, run_job, stop_job

    bind(db, settings, RETENTION_JOB)
    try:
        now = datetime.now(UTC)
        assert run_job(RETENTION_JOB.name, now)  # this replica wins the tick
        assert not run_job(RETENTION_JOB.name, now)  # a second replica firing for the same tick does not
        assert run_job(RETENTION_JOB.name, now + timedelta(seconds=RETENTION_JOB.every_seconds))
    finally:
        stop_job(RETENTION_JOB.name)
