"""Ingest through NATS JetStream (issue 25, item 1): publish, store with workers, dead-letter what the store refuses.

Real NATS servers (tests/support/nats_servers.py) and real PostgreSQL. Every test counts what it sent
against what was stored and dead-lettered, and checks that no id is stored twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shiftwatch.collector.broker import BrokerConfig, BrokerPublisher, BrokerUnavailable
from shiftwatch.collector.ingest_worker import IngestWorker, StoreLimits
from shiftwatch.collector.tables import Prediction
from shiftwatch.db import Database
from shiftwatch.settings import Settings
from shiftwatch_client import wire
from shiftwatch_client.records import to_columns
from tests.support.collector import as_npz, records, store_predictions
from tests.support.command_line import cli, cli_process, environment
from tests.support.nats_servers import PrivateNats, broker_settings, shared_url_or_skip, wait_pulling

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"])]


def stored(db: Database) -> tuple[int, int]:
    """Rows in ``predictions`` and distinct ids among them."""
    with db.session() as session:
        return (int(session.scalar(select(func.count()).select_from(Prediction))),
                int(session.scalar(select(func.count(func.distinct(Prediction.id))))))  # fmt: skip


def limits(settings: Settings) -> StoreLimits:
    return StoreLimits(max_unpacked_bytes=settings.max_request_bytes, retention_days=settings.retention_days)


@contextmanager
def worker_thread(db: Database, settings: Settings) -> Iterator[IngestWorker]:
    config = BrokerConfig.of(settings)
    assert config is not None
    worker = IngestWorker(db, config, limits(settings))
    thread = threading.Thread(target=lambda: asyncio.run(worker.run()), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop.set()
        thread.join(timeout=20)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def broker_gauges(api) -> dict[str, float]:
    """The broker backlog as /metrics serves it (read from JetStream at the scrape)."""
    text = api.get("/metrics").text
    found = re.findall(r"^shiftwatch_ingest_(broker_readable|broker_pending|dead_letters) (\S+)$", text, re.MULTILINE)
    return {name.removeprefix("broker_"): float(value) for name, value in found}


def dead_letters(settings: Settings) -> dict:
    extra = {f"SHIFTWATCH_INGEST_BROKER_{k.upper()}": str(v) for k, v in (
        ("url", settings.ingest_broker_url), ("stream", settings.ingest_broker_stream),
        ("subject", settings.ingest_broker_subject))}  # fmt: skip
    result = cli(settings, "ingest", "dead-letters", "--json", "--limit", "1000", **extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_api_publishes_a_worker_stores_and_the_store_refusals_are_dead_letters(settings, db, digits_model) -> None:
    """202 once JetStream has the batch; the worker stores it; moved ids (the store's refusal) are dead letters."""
    from fastapi.testclient import TestClient

    from shiftwatch.app import create_app

    settings = broker_settings(settings, shared_url_or_skip())
    earlier = records(5, seed=1)
    store_predictions(db, settings, earlier)
    batch = records(200, seed=2)
    for i, old in enumerate(earlier):  # the same ids at another ts: refused by the store, not by validation
        batch[i] = dataclasses.replace(batch[i], id=old.id, ts=old.ts - timedelta(seconds=30))
    for i in (10, 11, 12):  # refused by the API's validation, in the answer
        batch[i] = dataclasses.replace(batch[i], version="v-unknown")
    with TestClient(create_app(settings, db)) as api:
        answer = api.post("/v1/predictions?partial=true", content=as_npz(batch),
                          headers={"content-type": wire.CONTENT_TYPE})  # fmt: skip
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert (body["queued"], body["stored"], body["refused"]) == (197, 0, 3)
        assert stored(db) == (5, 5), "the API stores nothing itself on the broker path"
        assert broker_gauges(api) == {"readable": 1.0, "pending": 1.0, "dead_letters": 0.0}  # no worker yet
        with worker_thread(db, settings) as worker:
            wait_until(lambda: worker.stats.stored + worker.stats.refused >= 197, 30, "the worker")
            wait_until(lambda: broker_gauges(api)["pending"] == 0, 10, "/metrics to show no backlog")
            assert broker_gauges(api)["dead_letters"] == 5
            again = api.post("/v1/predictions?partial=true", content=as_npz(batch),
                             headers={"content-type": wire.CONTENT_TYPE})  # fmt: skip
            assert again.status_code == 202
            time.sleep(1.5)  # a redelivered or re-sent batch would be stored (twice) by now
    assert stored(db) == (5 + 192, 5 + 192)
    letters = dead_letters(settings)
    assert letters["total"] == 5
    assert {d["id"] for d in letters["letters"]} == {str(r.id) for r in earlier}
    assert all(d["status"] == 409 and "already stored with ts" in d["reason"] for d in letters["letters"])


def test_gateway_answers_are_published_then_stored_by_a_worker(settings, db) -> None:
    """The gateway's log writer publishes what it answered instead of writing it; a worker stores every row once."""
    from sqlalchemy import select

    from shiftwatch.app import create_app
    from tests.support.rollout import add_version, predict_burst
    from tests.support.servers import LiveServer

    settings = broker_settings(settings, shared_url_or_skip())
    add_version(db, settings, "v1", state="production")
    app = create_app(settings, db)
    server = LiveServer(app).start()
    try:
        answers = predict_burst(server.url, [{"x-request-id": f"g-{i}"} for i in range(30)])
        assert [a.status_code for a in answers] == [200] * 30
        assert app.state.gateway.writer.flush()
        assert stored(db) == (0, 0), "published, not written: no worker runs yet"
        with worker_thread(db, settings):
            wait_until(lambda: stored(db)[0] >= 30, 30, "the worker to store the gateway's rows")
            time.sleep(0.5)
        assert app.state.gateway.writer.failed == 0
    finally:
        server.stop()
    with db.session() as session:
        assert sorted(session.scalars(select(Prediction.request_id))) == sorted(f"g-{i}" for i in range(30))


def test_the_sdk_is_unchanged_its_rows_are_queued_then_stored(settings, db, digits_model, tmp_path) -> None:
    """The SDK POSTs as before; a broker server's 202 counts as queued, and logged = queued once flushed."""
    from shiftwatch.app import create_app
    from shiftwatch.collector.client import Client
    from tests.support.servers import LiveServer

    settings = broker_settings(settings, shared_url_or_skip())
    server = LiveServer(create_app(settings, db)).start()
    try:
        client = Client(server.url, batch_size=50, spill_dir=tmp_path / "spill")
        for r in records(120, seed=7):
            client.log(r.model, r.version, r.predicted_class, r.confidence, embedding=r.embedding,
                       probabilities=r.probabilities, request_id=r.request_id)  # fmt: skip
        assert client.flush(timeout=30)
        client.close()
        stats = client.stats
        assert (stats.logged, stats.queued, stats.stored, stats.rejected, stats.spilled) == (120, 120, 0, 0, 0)
        with worker_thread(db, settings):
            wait_until(lambda: stored(db)[0] >= 120, 30, "the worker")
    finally:
        server.stop()
    assert stored(db) == (120, 120)


def test_a_broker_down_is_503_with_retry_after_and_nothing_is_claimed(settings, db, digits_model, tmp_path) -> None:
    """No JetStream ack, no 2xx: the client keeps the batch and retries (what the SDK does with a 503)."""
    from fastapi.testclient import TestClient

    from shiftwatch.app import create_app

    nats = PrivateNats(tmp_path / "jetstream").start()
    settings = broker_settings(settings, nats.url)
    try:
        with TestClient(create_app(settings, db)) as api:
            post = lambda: api.post("/v1/predictions", content=as_npz(records(20, seed=9)),
                                    headers={"content-type": wire.CONTENT_TYPE})  # fmt: skip
            assert post().status_code == 202
            nats.stop()
            down = post()
            assert down.status_code == 503 and down.headers["retry-after"] == "1", down.text
            assert "ingest broker is unavailable" in down.json()["detail"]
            nats.start()
            wait_until(lambda: post().status_code == 202, 20, "the publisher to reconnect")
    finally:
        nats.stop()


def test_dead_letters_without_a_broker_is_exit_2(settings) -> None:
    result = cli_process(settings, "ingest", "dead-letters")
    assert result.returncode == 2 and "SHIFTWATCH_INGEST_BROKER_URL is not set" in result.stderr


def start_worker(settings: Settings, url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | environment(
        settings, SHIFTWATCH_INGEST_BROKER_URL=url, SHIFTWATCH_INGEST_BROKER_STREAM=settings.ingest_broker_stream,
        SHIFTWATCH_INGEST_BROKER_SUBJECT=settings.ingest_broker_subject,
        SHIFTWATCH_INGEST_BROKER_CONSUMER=settings.ingest_broker_consumer, SHIFTWATCH_INGEST_BROKER_ACK_WAIT_S="2",
    )  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "shiftwatch", "ingest-worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def publish_until_taken(publisher: BrokerPublisher, batch: wire.ColumnBatch, timeout_s: float = 30) -> int:
    """What the SDK does on a 503: retry until JetStream acks (the same message id, so no double)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return publisher.publish_wait([batch])
        except BrokerUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_two_workers_one_killed_mid_batch_and_the_server_restarted_lose_nothing_and_store_nothing_twice(
    settings, db, digits_model, tmp_path
) -> None:
    """sent = stored + refused, every id once, after a SIGKILLed worker and a restarted nats-server."""
    nats = PrivateNats(tmp_path / "jetstream").start()
    settings = broker_settings(settings, nats.url)
    config = BrokerConfig.of(settings)
    assert config is not None
    moved = records(40, seed=3)
    store_predictions(db, settings, moved)
    batches, sent = [], 0
    for b in range(40):  # 40 batches of 300 rows; 1 row in each of the first 40 is an id stored at another ts
        rows = records(300, seed=100 + b)
        rows[0] = dataclasses.replace(rows[0], id=moved[b].id, ts=moved[b].ts - timedelta(seconds=5))
        batches.append(to_columns(rows))
    publisher = BrokerPublisher(config)
    workers = [start_worker(settings, nats.url), start_worker(settings, nats.url)]
    try:  # both must be pulling before the first batch: the one killed then holds work, not an empty start-up
        wait_pulling(nats.url, config.stream, config.consumer, 2, timeout_s=45)
        for b, batch in enumerate(batches):
            sent += publish_until_taken(publisher, batch)
            if b == 10:
                wait_until(lambda: stored(db)[0] > 40 + 300, 30, "the workers to store")
                workers[0].send_signal(signal.SIGKILL)  # holding fetched, unacked messages: some mid-store
            if b == 20:
                nats.restart()
        wait_until(lambda: stored(db)[0] - 40 + len(dead_letter_ids(config)) >= sent, 45, "everything sent")
        time.sleep(2.5)  # past ack_wait: a redelivery would show here as a second row
    finally:
        publisher.close()
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=20)
        letters = dead_letter_ids(config)
        nats.stop()
    assert workers[0].returncode == -signal.SIGKILL
    survivor_log = workers[1].stderr.read().decode() if workers[1].stderr else ""
    found = re.search(r"redelivered=(\d+)", survivor_log)
    assert found and int(found.group(1)) > 0, "the killed worker's unacked messages were not redelivered:\n" + survivor_log[-2000:]
    rows, distinct = stored(db)
    assert rows == distinct, "an id stored twice"
    assert sent == 40 * 300
    assert rows - 40 + len(letters) == sent, f"sent {sent}, stored {rows - 40}, dead-lettered {len(letters)}"
    assert letters == {str(r.id) for r in moved}


def dead_letter_ids(config: BrokerConfig) -> set[str]:
    from shiftwatch.collector.dead_letters import read_letters

    try:
        total, found = asyncio.run(read_letters(config, 10_000))
    except Exception:  # noqa: BLE001 - the server restarting: nothing read this time
        return set()
    assert total == len(found), "a dead letter stored twice"
    return {d.id for d in found}

