"""Two ``shiftwatch serve`` processes on one PostgreSQL, and ingest backpressure when the database falls behind."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest

from shiftwatch.collector import metrics, registry
from shiftwatch.db import Database
from shiftwatch.settings import Settings
from shiftwatch.tokens import create_token
from shiftwatch_client.client import Client
from tests.support.databases import create_pg_database, drop_pg_database, pg_unavailable_reason
from tests.support.pg_processes import ServeProcess, log_n, predictions_locked, stored_count, wait_for_lock_waiters
from tests.support.servers import LiveServer

SECRET = "LjBpdpVseduw33ZkABVH5U3-O57kweKKzBg34jtY"


@pytest.fixture
def shared_pg(tmp_path):
    problem = pg_unavailable_reason()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unavailable: {problem}")
        pytest.skip(f"PostgreSQL unavailable: {problem}")
    url = create_pg_database("sw_replicas")
    yield url
    drop_pg_database(url)


@pytest.mark.slow
def test_two_replicas_migrate_once_and_ingest_through_both(shared_pg, tmp_path):
    # Both start on an empty database at the same moment: the migration lock lets one migrate.
    replicas = [
        ServeProcess(shared_pg, tmp_path / f"data{i}", auth_required="true", secret_key=SECRET) for i in range(2)
    ]
    starters = [threading.Thread(target=r.start) for r in replicas]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    db = Database.connect(shared_pg)
    clients = []
    try:
        assert all(r.process.poll() is None for r in replicas), "a replica died while starting"
        with db.session() as session:
            registry.register_model(session, "digits", [str(i) for i in range(10)])
            registry.register_version(session, "digits", "v1", embedding_dim=64, state="production")
        token = create_token(db, "gateway", ["ingest"])
        clients = [
            Client(r.url, token=token, batch_size=200, spill_dir=tmp_path / f"spill{i}", max_retry_s=60)
            for i, r in enumerate(replicas)
        ]
        producers = [threading.Thread(target=log_n, args=(c, 1000), kwargs={"seed": i}) for i, c in enumerate(clients)]
        for p in producers:
            p.start()
        # The same 100 predictions through both replicas at once (a client retrying against another node).
        ts = datetime.now(UTC)
        shared = [uuid.uuid4() for _ in range(100)]
        for c in clients:
            for pid in shared:
                c.log("digits", "v1", 1, 0.9, embedding=np.zeros(64), id=pid, ts=ts)
        for p in producers:
            p.join()
        for c in clients:
            assert c.flush(timeout=90)
            assert c.stats.rejected_batches == 0, c.stats.last_error
        assert stored_count(db) == 2000 + 100
        assert sum(c.stats.stored for c in clients) == 2100
        assert sum(c.stats.duplicates for c in clients) == 100
    finally:
        for c in clients:
            c.close(timeout=5)
        for r in replicas:
            r.stop()
        db.dispose()


@pytest.mark.parametrize("backend", ["postgres"])
def test_slow_database_gets_503_with_retry_after_not_a_queue(backend, db_url, db, digits_model, tmp_path):
    from shiftwatch.app import create_app

    settings = Settings(
        database_url=db_url, data_dir=tmp_path / "data", scheduler_enabled=False, max_inflight_batches=1,
        auth_required=False,
    )
    server = LiveServer(create_app(settings, db)).start()
    body = {
        "predictions": [
            {"id": str(uuid.uuid4()), "model": "digits", "version": "v1", "ts": datetime.now(UTC).isoformat(),
             "predicted_class": 1, "confidence": 0.9}
        ]
    }  # fmt: skip
    first: dict = {}
    try:
        with predictions_locked(db_url):
            blocked = threading.Thread(
                target=lambda: first.update(r=httpx.post(f"{server.url}/v1/predictions", json=body, timeout=30))
            )
            blocked.start()
            wait_for_lock_waiters(db_url)  # the one allowed batch is stuck in the database
            second = httpx.post(f"{server.url}/v1/predictions", json=body, timeout=5)
            assert second.status_code == 503
            assert int(second.headers["Retry-After"]) >= 1
            assert second.json()["error"] == "Unavailable"
        blocked.join(timeout=30)
        assert first["r"].status_code == 200
        assert stored_count(db) == 1
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"])
def test_sdk_backs_off_as_told_and_delivers_everything(backend, db_url, db, digits_model, tmp_path):
    from shiftwatch.app import create_app

    settings = Settings(
        database_url=db_url, data_dir=tmp_path / "data", scheduler_enabled=False, max_inflight_batches=1,
        auth_required=False,
    )
    server = LiveServer(create_app(settings, db)).start()
    refused_before = metrics.REJECTED.labels(reason="Unavailable")._value.get()
    hold_s = 3.0
    try:
        with Client(server.url, batch_size=50, concurrency=2, spill_dir=tmp_path / "spill", max_retry_s=60) as client:
            with predictions_locked(db_url):
                log_n(client, 400)
                wait_for_lock_waiters(db_url)
                time.sleep(hold_s)
            assert client.flush(timeout=60)
            refused = metrics.REJECTED.labels(reason="Unavailable")._value.get() - refused_before
            # One sender holds the only slot; the other is refused and waits Retry-After (1 s) each time:
            # about hold_s refusals. Exponential backoff from 0.1 s ignoring the header would make 5 or more.
            assert 1 <= refused <= hold_s + 1
            assert client.stats.retries == refused
        assert stored_count(db) == 400
    finally:
        server.stop()
