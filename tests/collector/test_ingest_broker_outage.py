"""A worker waits out a PostgreSQL outage: it naks what it cannot store, and stores it once the database is back."""

from __future__ import annotations

import time

import pytest

from shiftwatch.collector import registry
from shiftwatch.collector.broker import BrokerConfig, BrokerPublisher
from shiftwatch.db import Database
from shiftwatch.settings import Settings
from shiftwatch_client.records import to_columns
from tests.collector.test_ingest_broker import stored, wait_until, worker_thread
from tests.support.collector import records
from tests.support.databases import empty_all_tables
from tests.support.nats_servers import broker_settings, shared_url_or_skip
from tests.support.pg_processes import FaultCluster

pytestmark = pytest.mark.slow


def test_a_worker_naks_while_the_database_is_down_and_stores_everything_once_it_is_back(
    fault_cluster: FaultCluster, tmp_path
) -> None:
    settings = broker_settings(Settings(database_url=fault_cluster.url, data_dir=tmp_path / "data",
                                        scheduler_enabled=False, auth_required=False), shared_url_or_skip())  # fmt: skip
    config = BrokerConfig.of(settings)
    assert config is not None
    db = Database.connect(fault_cluster.url)
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        registry.register_version(session, "digits", "v1", embedding_dim=64, state="production")
    publisher = BrokerPublisher(config)
    try:
        with worker_thread(db, settings) as worker:
            publisher.publish_wait([to_columns(records(100, seed=20))])
            wait_until(lambda: stored(db)[0] == 100, 30, "the first batch")
            fault_cluster.stop()
            for seed in range(21, 26):  # published (JetStream acks) while nothing can be stored
                publisher.publish_wait([to_columns(records(100, seed=seed))])
            time.sleep(3)  # the worker tries, fails and naks meanwhile
            fault_cluster.start()
            wait_until(lambda: stored(db)[0] == 600, 60, "the batches published during the outage")
            time.sleep(0.5)
            assert worker.stats.redelivered > 0, "the outage was not felt: no message came back"
        assert stored(db) == (600, 600)
    finally:
        publisher.close()
        try:
            fault_cluster.wait_ready(timeout=0.5)
        except Exception:  # noqa: BLE001 - still down after a failure above
            fault_cluster.start()
        empty_all_tables(db)
        db.dispose()
