"""Fixtures: a real database (SQLite file and PostgreSQL), a real app, a real uvicorn on loopback.

Every database test runs on both backends (``backend`` is parametrized). Choose with
``SHIFTWATCH_TEST_BACKENDS=sqlite`` or ``=postgres``. A missing PostgreSQL skips its
half locally, and fails the run under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shiftwatch.db import Database
from shiftwatch.migrate import upgrade
from shiftwatch.settings import Settings
from tests.support.databases import (
    BACKENDS,
    create_pg_database,
    drop_pg_database,
    empty_all_tables,
    pg_unavailable_reason,
)
from tests.support.servers import TEST_CLIENT_HOST, LiveServer


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
            problem = pg_unavailable_reason()
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


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Auth off on purpose: most tests exercise a domain, not auth; the security tests turn it on.

    ``testserver`` is the Host header FastAPI's TestClient sends; a real server answers only to
    its public URL's host and loopback (shiftwatch.cross_site). Every embedding is kept: tests of other
    areas compare what they logged with what was stored; the sample (SHIFTWATCH_EMBEDDING_KEEP_RATE,
    default 0.05) has its own tests (tests/collector/test_embedding_keep.py, tests/detectors/test_embedding_sample.py).
    """
    return Settings(database_url=db_url, data_dir=tmp_path / "data", scheduler_enabled=False, auth_required=False,
                    allowed_hosts=[TEST_CLIENT_HOST], embedding_keep_rate=1.0)


@pytest.fixture
def app(settings: Settings, db: Database):
    from shiftwatch.app import create_app

    return create_app(settings, db)


@pytest.fixture
def api(app) -> Iterator:
    """Real HTTP requests through the ASGI app (lifespan included)."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_cluster() -> Iterator:
    """A private PostgreSQL cluster the module's tests may stop and start (tests/support/pg_processes.py)."""
    from tests.support.pg_processes import migrated_fault_cluster

    with migrated_fault_cluster() as cluster:
        yield cluster


@pytest.fixture
def digits_model(db: Database):
    """A registered model ``digits`` with version ``v1`` (64-d embeddings, 10 classes)."""
    from shiftwatch.collector import registry

    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        return registry.register_version(session, "digits", "v1", embedding_dim=64, state="production")
