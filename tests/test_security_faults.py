"""Faults with a real PostgreSQL we may kill: nothing logged is lost, nothing is stored twice or half.

Each test runs against a private cluster (see pg_processes.py), never the shared one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from conftest import LiveServer, empty_all_tables
from pg_processes import FaultCluster, ServeProcess, fault_cluster_or_skip
from sqlalchemy import create_engine, func, select, text

from shiftwatch.collector import registry
from shiftwatch.collector.client import Client
from shiftwatch.collector.models import Prediction
from shiftwatch.db import Database
from shiftwatch.migrate import upgrade
from shiftwatch.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[FaultCluster]:
    cluster = fault_cluster_or_skip()
    try:
        upgrade(cluster.url)
        yield cluster
    finally:
        cluster.drop()


@pytest.fixture
def fault_db(cluster: FaultCluster) -> Iterator[Database]:
    database = Database.connect(cluster.url)
    with database.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        registry.register_version(session, "digits", "v1", embedding_dim=64, state="production")
    yield database
    empty_all_tables(database)
    database.dispose()


def count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


def distinct_ids(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count(func.distinct(Prediction.id)))))


def log_n(client: Client, n: int, seed: int = 0, pause_every: int = 0, pause_s: float = 0.0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        probs = rng.dirichlet(np.ones(10))
        client.log("digits", "v1", int(probs.argmax()), float(probs.max()), embedding=rng.normal(size=64), probabilities=probs)
        if pause_every and i % pause_every == pause_every - 1:
            time.sleep(pause_s)


@contextmanager
def predictions_locked(url: str) -> Iterator[None]:
    """Hold an exclusive lock on ``predictions``: any ingest blocks inside its transaction until release."""
    engine = create_engine(url)
    connection = engine.connect()
    transaction = connection.begin()
    connection.execute(text("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE"))
    try:
        yield
    finally:
        transaction.rollback()
        connection.close()
        engine.dispose()


def wait_for_lock_waiters(url: str, at_least: int = 1, timeout: float = 20) -> None:
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                waiting = connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
                ).scalar_one()
            if waiting >= at_least:
                return
            if time.monotonic() > deadline:
                raise AssertionError("no ingest transaction is waiting on the lock")
            time.sleep(0.05)
    finally:
        engine.dispose()


def wait_for_no_open_transactions(url: str, timeout: float = 20) -> None:
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                busy = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
                    )
                ).scalar_one()
            if busy == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError("a transaction of the killed server is still open")
            time.sleep(0.05)
    finally:
        engine.dispose()


def test_database_restart_during_ingest_loses_nothing(cluster, fault_db, tmp_path):
    settings = Settings(database_url=cluster.url, data_dir=tmp_path / "data", scheduler_enabled=False)
    from shiftwatch.app import create_app

    server = LiveServer(create_app(settings, fault_db)).start()
    total = 3000
    try:
        with Client(server.url, batch_size=100, spill_dir=tmp_path / "spill", max_retry_s=60) as client:
            # ~3 s of steady inflow; the database restarts about a second in.
            producer = threading.Thread(target=log_n, args=(client, total), kwargs={"pause_every": 100, "pause_s": 0.1})
            producer.start()
            time.sleep(1.0)
            cluster.restart()
            producer.join()
            assert client.flush(timeout=90)
            assert client.stats.rejected_batches == 0
            assert client.stats.retries >= 1, "the restart should have been noticed"
        assert count(fault_db) == total
        assert distinct_ids(fault_db) == total
    finally:
        server.stop()


def test_server_killed_mid_batch_stores_nothing_then_the_retry_stores_it_once(cluster, fault_db, tmp_path):
    n = 500
    first = ServeProcess(cluster.url, tmp_path / "data").start()
    second = ServeProcess(cluster.url, tmp_path / "data", port=first.port)  # same address, started later
    client = Client(first.url, batch_size=n, spill_dir=tmp_path / "spill", max_retry_s=90, timeout_s=30)
    try:
        with predictions_locked(cluster.url):
            log_n(client, n, seed=3)
            wait_for_lock_waiters(cluster.url)  # the batch is inside its transaction, blocked
            first.kill()
        # The killed server's transaction never committed: once its backend is gone, not one row is there.
        wait_for_no_open_transactions(cluster.url)
        assert count(fault_db) == 0
        second.start()
        assert client.flush(timeout=120)
        assert count(fault_db) == n
        assert distinct_ids(fault_db) == n
        assert client.stats.retries >= 1
    finally:
        client.close(timeout=5)
        first.stop()
        second.stop()
