"""Faults with a real PostgreSQL we may kill: nothing logged is lost, nothing is stored twice or half.

Each test runs against a private cluster (see tests/support/pg_processes.py), never the shared one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from shiftwatch.collector import registry
from shiftwatch.db import Database
from shiftwatch.settings import Settings
from shiftwatch_client.client import Client
from tests.support.databases import empty_all_tables
from tests.support.pg_processes import (
    FaultCluster,
    ServeProcess,
    log_n,
    migrated_fault_cluster,
    predictions_locked,
    stored_count,
    wait_for_lock_waiters,
    wait_for_no_open_transactions,
)
from tests.support.servers import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[FaultCluster]:
    with migrated_fault_cluster() as cluster:
        yield cluster


@pytest.fixture
def fault_db(cluster: FaultCluster) -> Iterator[Database]:
    database = Database.connect(cluster.url)
    with database.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        registry.register_version(session, "digits", "v1", embedding_dim=64, state="production")
    yield database
    empty_all_tables(database)
    database.dispose()


def test_database_restart_during_ingest_loses_nothing(cluster, fault_db, tmp_path):
    settings = Settings(
        database_url=cluster.url, data_dir=tmp_path / "data", scheduler_enabled=False, auth_required=False
    )
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
        assert stored_count(fault_db) == total
        assert stored_count(fault_db, distinct=True) == total
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
        assert stored_count(fault_db) == 0
        second.start()
        assert client.flush(timeout=120)
        assert stored_count(fault_db) == n
        assert stored_count(fault_db, distinct=True) == n
        assert client.stats.retries >= 1
    finally:
        client.close(timeout=5)
        first.stop()
        second.stop()
