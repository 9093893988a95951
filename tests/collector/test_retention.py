"""Retention: PostgreSQL drops whole daily partitions; SQLite deletes old rows; recent data stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from shiftwatch.collector.partitions import apply_retention, ensure_upcoming_partitions, list_partitions
from shiftwatch.collector.tables import Prediction, PredictionId
from tests.support.collector import records, store_predictions


def count(db, table=Prediction) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)))


def test_retention_removes_only_days_past_the_window(db, settings, digits_model) -> None:
    now = datetime.now(UTC)
    old = records(30, ts=now - timedelta(days=9, hours=1), seed=1)
    recent = records(20, ts=now - timedelta(hours=1), seed=2)
    store_predictions(db, settings, old + recent)
    assert count(db) == 50

    removed = apply_retention(db.engine, retention_days=7, now=now)

    assert removed >= 1
    assert count(db) == 20
    assert count(db, PredictionId) == 20, "the ids of dropped days go with them"
    if db.is_postgres:
        days = [day for _, day in list_partitions(db.engine)]
        assert (now - timedelta(days=9, hours=1)).date() not in days
        assert (now - timedelta(hours=1)).date() in days


def test_upcoming_partitions_are_created_ahead(db) -> None:
    ensure_upcoming_partitions(db.engine, days_ahead=3)
    if db.is_postgres:
        today = datetime.now(UTC).date()
        days = {day for _, day in list_partitions(db.engine)}
        assert {today + timedelta(days=i) for i in range(4)} <= days
    else:
        assert count(db) == 0  # SQLite has no partitions: nothing to create, nothing breaks
