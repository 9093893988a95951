"""Daily range partitions of ``predictions`` on PostgreSQL, and retention on both backends.

Retention drops whole daily partitions on PostgreSQL (no row-by-row DELETE, no bloat);
on SQLite, where tables cannot be partitioned, it deletes old rows. The narrow
``prediction_ids`` rows of the same days go by DELETE on both (a BRIN range scan on PostgreSQL).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, text
from sqlalchemy.engine import Connection, Engine

from shiftwatch.collector.tables import Prediction, PredictionId

_known_partitions: set[tuple[str, date]] = set()
_lock = threading.Lock()


def partition_name(day: date) -> str:
    return f"predictions_p{day:%Y%m%d}"


def ensure_partitions(connection: Connection, days: set[date]) -> None:
    """Create the daily partitions that ``days`` need (no-op on SQLite and for known ones)."""
    if connection.dialect.name != "postgresql":
        return
    url_key = str(connection.engine.url)
    missing = sorted(day for day in days if (url_key, day) not in _known_partitions)
    for day in missing:
        start = datetime.combine(day, time(0), tzinfo=UTC)
        end = start + timedelta(days=1)
        # A savepoint, so a concurrent replica creating the same partition does not abort our batch.
        with connection.begin_nested():
            exists = connection.execute(
                text("SELECT 1 FROM pg_class WHERE relname = :name"), {"name": partition_name(day)}
            ).first()
            if exists is None:
                try:
                    with connection.begin_nested():
                        connection.execute(
                            text(
                                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF predictions "
                                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                            )
                        )
                except Exception as exc:  # another replica won the race: the partition now exists
                    if "already exists" not in str(exc) and "would overlap" not in str(exc):
                        raise
        with _lock:
            _known_partitions.add((url_key, day))


def ensure_upcoming_partitions(engine: Engine, days_ahead: int, today: date | None = None) -> None:
    today = today or datetime.now(UTC).date()
    with engine.begin() as connection:
        ensure_partitions(connection, {today + timedelta(days=i) for i in range(days_ahead + 1)})


def list_partitions(engine: Engine) -> list[tuple[str, date]]:
    """The daily partitions that exist, oldest first (PostgreSQL only)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'predictions'"
            )
        ).scalars()
        out = []
        for name in rows:
            if name.startswith("predictions_p"):
                out.append((name, datetime.strptime(name.removeprefix("predictions_p"), "%Y%m%d").date()))
        return sorted(out, key=lambda item: item[1])


def apply_retention(engine: Engine, retention_days: int, now: datetime | None = None) -> int:
    """Drop predictions older than ``retention_days``; returns partitions dropped (PG) or rows deleted (SQLite)."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    if engine.dialect.name != "postgresql":
        with engine.begin() as connection:
            connection.execute(delete(PredictionId).where(PredictionId.ts < cutoff))
            return connection.execute(delete(Prediction).where(Prediction.ts < cutoff)).rowcount or 0
    dropped = 0
    for name, day in list_partitions(engine):
        # A partition holds [day, day+1); drop it once all of it is older than the cutoff.
        if datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) <= cutoff:
            with engine.begin() as connection:
                connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
            url_key = str(engine.url)
            with _lock:
                _known_partitions.discard((url_key, day))
            dropped += 1
    if dropped:
        # Only ids of the dropped days: an id stays known while a partition may still hold its row.
        oldest_kept = min((day for _, day in list_partitions(engine)), default=None)
        horizon = cutoff if oldest_kept is None else datetime.combine(oldest_kept, time(0), tzinfo=UTC)
        with engine.begin() as connection:
            connection.execute(delete(PredictionId).where(PredictionId.ts < horizon))
    return dropped


def forget_known_partitions() -> None:
    """Clear the in-process cache (tests that drop and recreate schemas need this)."""
    with _lock:
        _known_partitions.clear()
