"""The test databases: which backends run, PostgreSQL databases made and dropped per session, tables emptied."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text

from shiftwatch.collector.ingest import forget_cached_versions
from shiftwatch.collector.partitions import forget_known_partitions
from shiftwatch.db import Base, Database, import_all_tables

PG_ADMIN_URL = os.environ.get("SHIFTWATCH_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b.strip() for b in os.environ.get("SHIFTWATCH_TEST_BACKENDS", "sqlite,postgres").split(",") if b.strip()]


def pg_unavailable_reason() -> str | None:
    """Why the PostgreSQL at ``PG_ADMIN_URL`` cannot be reached, or None when it can."""
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return str(exc).splitlines()[0]


def create_pg_database(prefix: str = "sw_test") -> str:
    """Create an empty PostgreSQL database for this test session; returns its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    """Drop a database made by ``create_pg_database``, closing the connections still open on it."""
    name = url.rsplit("/", 1)[1]
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def empty_all_tables(database: Database) -> None:
    """Delete every row and forget the caches that remember rows, so the next test starts from empty tables."""
    import_all_tables()
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as connection:
        if database.is_postgres:
            existing = set(connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'")).scalars())
            present = [t for t in tables if t in existing]
            if present:
                connection.execute(text(f"TRUNCATE {', '.join(present)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))
    forget_known_partitions()
    forget_cached_versions()
