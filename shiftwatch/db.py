"""Database wiring: the one ORM metadata, engine creation for SQLite and PostgreSQL, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import DateTime, LargeBinary, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations and the ORM agree on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table in every domain package."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_FLOAT32_LE = np.dtype("<f4")  # parsed once: a Float32Vector column decodes once per row read


def float32_bytes(array: np.ndarray) -> bytes:
    """An array's values as the bytes a ``Float32Vector`` column stores: little-endian float32, row-major."""
    return np.ascontiguousarray(array, dtype=_FLOAT32_LE).tobytes()


def float32_rows(matrix: np.ndarray) -> list[bytes]:
    """Each row of a 2-d array as ``float32_bytes`` would give it, for writers that bypass column types (COPY)."""
    return [row.tobytes() for row in np.ascontiguousarray(matrix, dtype=_FLOAT32_LE)]


class Float32Vector(TypeDecorator[np.ndarray]):
    """float32 vectors as little-endian bytes (4 per value, not JSON text), read back as 1-d float32 arrays.

    An array of any shape is stored flattened. Bytes pass through as already encoded (``float32_rows``):
    ingest builds one row shape for PostgreSQL's COPY, which bypasses column types, and SQLite's insert.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: np.ndarray | bytes | None, dialect: object) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        return float32_bytes(value)

    def process_result_value(self, value: bytes | None, dialect: object) -> np.ndarray | None:
        return None if value is None else np.frombuffer(value, dtype=_FLOAT32_LE).astype(np.float32)

    def compare_values(self, x: object, y: object) -> bool:
        """Equal when the stored bytes would be (``==`` on arrays is elementwise, so the ORM cannot use it)."""
        if not isinstance(x, (np.ndarray, bytes)) or not isinstance(y, (np.ndarray, bytes)):
            return x is y
        return self.process_bind_param(x, None) == self.process_bind_param(y, None)


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create an engine; SQLite gets WAL mode, synchronous=FULL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a write is on disk (WAL fsynced) before it is acknowledged, so it survives power loss;
            # NORMAL survives a process crash only. Cost on ingest: bench/sqlite_sync.py, docs/security.md.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


@dataclass
class Database:
    """An engine plus its session factory; one per process, passed down explicitly.

    ``replica``: a streaming replica of it (``SHIFTWATCH_READ_DATABASE_URL``) for reads that may lag
    a little (detector windows, console pages); ``reader()`` is where such reads go.
    """

    engine: Engine
    sessions: sessionmaker[Session]
    replica: Database | None = None

    @classmethod
    def connect(cls, url: str, read_url: str | None = None) -> Database:
        engine = make_engine(url)
        replica = cls.connect(read_url) if read_url else None
        return cls(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False), replica=replica)

    def reader(self) -> Database:
        """Where reads that may lag go: the replica when there is one, else this database."""
        return self.replica or self

    @contextmanager
    def lagging(self, primary: Session) -> Iterator[Session]:
        """A session for reads that may lag: on the replica when there is one, else ``primary`` itself."""
        if self.replica is None:
            yield primary
            return
        with self.replica.session() as session:
            yield session

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self.replica is not None:
            self.replica.dispose()


def import_all_tables() -> None:
    """Import every domain's ORM models so ``Base.metadata`` holds the whole schema."""
    # Inside the function: each of these modules imports ``Base`` from this one.
    import shiftwatch.auth_tables
    import shiftwatch.collector.tables
    import shiftwatch.detectors.tables
    import shiftwatch.labeling.tables
    import shiftwatch.retrain.tables
    import shiftwatch.rollout.tables
    import shiftwatch.scheduler_tables  # noqa: F401 - imported for its tables (each line binds `shiftwatch`; ruff flags the last)
