"""A batch over the NATS server's payload limit is split by rows into messages with stable ids, each stored once."""

from __future__ import annotations

import asyncio

import pytest

from shiftwatch.collector.broker import BrokerConfig, BrokerPublisher, connect
from shiftwatch.db import Database
from shiftwatch.settings import Settings
from shiftwatch_client.records import to_columns
from tests.collector.test_ingest_broker import stored, wait_until, worker_thread
from tests.support.collector import records
from tests.support.nats_servers import PrivateNats, broker_settings

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"])]
MAX_PAYLOAD = 16 * 1024  # the server default is 1 MiB; 300 rows of 64-d embeddings and 10 probabilities encode to ~90 KB


def stream_messages(config: BrokerConfig) -> int:
    async def count() -> int:
        nc = await connect(config)
        try:
            return int((await nc.jetstream().stream_info(config.stream)).state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def test_a_batch_over_the_payload_limit_is_split_and_each_row_stored_once(settings: Settings, db: Database, digits_model,
                                                                          tmp_path) -> None:  # fmt: skip
    pytest.importorskip("nats")
    server = PrivateNats(tmp_path / "nats", max_payload=MAX_PAYLOAD).start()
    settings = broker_settings(settings, server.url)
    config = BrokerConfig.of(settings)
    assert config is not None
    publisher = BrokerPublisher(config)
    batch = to_columns(records(300, seed=31))
    try:
        assert publisher.publish_wait([batch]) == 300
        pieces = stream_messages(config)
        assert pieces >= 4, f"300 rows went as {pieces} message(s) under a {MAX_PAYLOAD}-byte limit"
        assert publisher.publish_wait([batch]) == 300  # a retry of the same batch: the same message ids
        assert stream_messages(config) == pieces, "JetStream took the retried pieces again (their ids changed)"
        with worker_thread(db, settings) as worker:
            wait_until(lambda: stored(db)[0] == 300, 30, "the pieces")
            wait_until(lambda: worker.stats.stored + worker.stats.refused >= 300, 10, "the worker's count")
        assert stored(db) == (300, 300)
    finally:
        publisher.close()
        server.stop()
