"""Fixtures: a real database (SQLite file and PostgreSQL), a real app, a real uvicorn on loopback.

Every database test runs on both backends (``backend`` is parametrized). Choose with
``SHIFTWATCH_TEST_BACKENDS=sqlite`` or ``=postgres``. A missing PostgreSQL skips its
half locally, and fails the run under ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shiftwatch.collector.ingest import forget_cached_versions
from shiftwatch.collector.partitions import forget_known_partitions
from shiftwatch.db import Base, Database, import_all_models
from shiftwatch.migrate import upgrade
from shiftwatch.settings import Settings

PG_ADMIN_URL = os.environ.get("SHIFTWATCH_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TEST_CLIENT_HOST = "testserver"
BACKENDS = [b.strip() for b in os.environ.get("SHIFTWATCH_TEST_BACKENDS", "sqlite,postgres").split(",") if b.strip()]


def _pg_available() -> str | None:
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
    name = url.rsplit("/", 1)[1]
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend for the whole test session, created lazily."""
    urls: dict[str, str] = {}
    yield urls
    for backend, url in urls.items():
        if backend == "postgres":
            drop_pg_database(url)


def _migrated_url(backend: str, urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    if backend not in BACKENDS:
        pytest.skip(f"backend {backend} not selected in SHIFTWATCH_TEST_BACKENDS")
    if backend not in urls:
        if backend == "postgres":
            problem = _pg_available()
            if problem is not None:
                if os.environ.get("CI") == "true":
                    pytest.fail(f"PostgreSQL is required in CI but unavailable: {problem}")
                pytest.skip(f"PostgreSQL unavailable: {problem}")
            url = create_pg_database()
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'shiftwatch.db'}"
        upgrade(url)
        urls[backend] = url
    return urls[backend]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, migrated_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    return _migrated_url(backend, migrated_urls, tmp_path_factory)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database, emptied after the test."""
    database = Database.connect(db_url)
    yield database
    empty_all_tables(database)
    database.dispose()


def empty_all_tables(database: Database) -> None:
    import_all_models()
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


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Auth off on purpose: most tests exercise a domain, not auth; the security tests turn it on.

    ``testserver`` is the Host header FastAPI's TestClient sends; a real server answers only to
    its public URL's host and loopback (shiftwatch.cross_site).
    """
    return Settings(database_url=db_url, data_dir=tmp_path / "data", scheduler_enabled=False, auth_required=False,
                    allowed_hosts=[TEST_CLIENT_HOST])


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    from shiftwatch.app import create_app

    return create_app(settings, db)


@pytest.fixture
def api(app) -> Iterator:  # type: ignore[no-untyped-def]
    """Real HTTP requests through the ASGI app (lifespan included)."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn serving ``app`` on a loopback port, in a thread; with ``settings``, as ``shiftwatch serve`` does."""

    def __init__(self, app, port: int | None = None, settings: Settings | None = None) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
        import uvicorn

        from shiftwatch.serving import server_config

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if settings is None:
            config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        else:
            config = server_config(app, settings, "127.0.0.1", self.port)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def digits_model(db: Database):  # type: ignore[no-untyped-def]
    """A registered model ``digits`` with version ``v1`` (64-d embeddings, 10 classes)."""
    from shiftwatch.collector import registry

    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        return registry.register_version(session, "digits", "v1", embedding_dim=64, state="production")
