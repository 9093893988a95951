"""``shiftwatch ingest-worker``: store the batches the API and the gateway published to JetStream.

Any number of workers, on any host, share one durable pull consumer, so each message goes to one of
them. A message is stored with the collector's idempotent path (``ingest``, partial), the rows the
store refuses go to the dead-letter stream, and only then is the message acked: a worker killed
before its ack leaves the message to another once ``ack_wait`` passes, and the ids make the second
store a duplicate. While the database is down a message is nak'ed and comes back after a pause.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.exc import OperationalError

from shiftwatch.collector.broker import BrokerConfig, connect, ensure_streams
from shiftwatch.collector.dead_letters import letters, publish_letters, unreadable
from shiftwatch.collector.ingest import IngestResult, ingest
from shiftwatch.collector.row_checks import RowProblem
from shiftwatch.db import Database
from shiftwatch.errors import ShiftwatchError
from shiftwatch_client import wire

log = logging.getLogger(__name__)

# Messages asked for per pull. One: nats-py's fetch of n waits (up to its timeout) until n arrive, which
# under a live trickle idles a worker for up to a second per pull (bench/ingest_broker.py measured it).
FETCH_BATCH = 1
# A message nak'ed while the database is down comes back after this long.
DATABASE_DOWN_DELAY_S = 2.0


@dataclass
class WorkerStats:
    """What one worker did: messages acked, rows stored, duplicates, rows dead-lettered."""

    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    redelivered: int = 0


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """SHIFTWATCH_MAX_REQUEST_BYTES (decoding a message), SHIFTWATCH_RETENTION_DAYS (validating its rows) and
    SHIFTWATCH_EMBEDDING_KEEP_RATE (which rows keep their embedding)."""

    max_unpacked_bytes: int
    retention_days: int
    embedding_keep_rate: float = 1.0


def store_batch(db: Database, batch: wire.ColumnBatch, limits: StoreLimits) -> IngestResult:
    """Store a message's rows; a value PostgreSQL refuses for the whole batch is found by storing row by row."""
    store = lambda b: ingest(db, [(b, None)], max_rows=len(b), retention_days=limits.retention_days,
                             partial=True, embedding_keep_rate=limits.embedding_keep_rate)  # fmt: skip
    try:
        return store(batch)
    except OperationalError:
        raise
    except ShiftwatchError:
        pass
    stored, refused = 0, []
    for i in range(len(batch)):
        try:
            one = store(batch.take(np.array([i])))
        except ShiftwatchError as exc:
            refused.append(RowProblem(i, "row", exc.message, type(exc)))
            continue
        stored += one.stored
        refused.extend(RowProblem(i, p.name, p.reason, p.kind) for p in one.refused)
    return IngestResult(received=len(batch), stored=stored, refused=tuple(refused))


class IngestWorker:
    """One consumer of the stream; ``run`` until ``stop`` is set."""

    def __init__(self, db: Database, config: BrokerConfig, limits: StoreLimits) -> None:
        self.db = db
        self.config = config
        self.limits = limits
        self.stats = WorkerStats()
        self.stop = threading.Event()

    async def run(self) -> WorkerStats:
        from nats.js import api

        nc = await connect(self.config)
        try:
            js = nc.jetstream(timeout=self.config.timeout_s)
            await ensure_streams(js, self.config)
            consumer = api.ConsumerConfig(ack_wait=self.config.ack_wait_s, max_deliver=-1,
                                          max_ack_pending=1000)  # fmt: skip
            sub = await js.pull_subscribe(self.config.subject, durable=self.config.consumer,
                                          stream=self.config.stream, config=consumer)  # fmt: skip
            while not self.stop.is_set():
                for msg in await self._fetch(sub):
                    await self._handle(js, msg)
        finally:
            await nc.close()
        return self.stats

    async def _fetch(self, sub: Any) -> list[Any]:
        import nats.errors

        try:
            return await sub.fetch(FETCH_BATCH, timeout=1.0)
        except nats.errors.TimeoutError:
            return []
        except nats.errors.Error as exc:  # the server is restarting: the client reconnects by itself
            log.warning("fetching from the ingest stream failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(0.5)
            return []

    async def _handle(self, js: Any, msg: Any) -> None:
        """Store, dead-letter the refused rows, then ack; anything short of that leaves the message to redeliver."""
        import nats.errors

        msg_id = (msg.headers or {}).get("Nats-Msg-Id", f"seq-{msg.metadata.sequence.stream}")
        if msg.metadata.num_delivered > 1:
            self.stats.redelivered += 1
        result = IngestResult(received=0, stored=0)
        try:
            batch = wire.decode(msg.data, max_unpacked_bytes=self.limits.max_unpacked_bytes)
        except wire.WireError as exc:
            found = [unreadable(msg_id, f"{exc.field}: {exc.why}")]
        else:
            try:
                result = await asyncio.to_thread(store_batch, self.db, batch, self.limits)
            except OperationalError:
                log.warning("the database is unavailable; message %s comes back in %.0f s", msg_id,
                            DATABASE_DOWN_DELAY_S)  # fmt: skip
                await msg.nak(delay=DATABASE_DOWN_DELAY_S)
                return
            found = letters(batch, list(result.refused), msg_id)
        try:
            await publish_letters(js, self.config, found)
            await msg.ack_sync(timeout=self.config.timeout_s)
        except (TimeoutError, nats.errors.Error) as exc:  # redelivered later: a duplicate, not a loss
            log.warning("message %s stored but not acked (%s); it will be redelivered", msg_id, type(exc).__name__)
            return
        self.stats.messages += 1
        self.stats.stored += result.stored
        self.stats.duplicates += result.duplicates
        self.stats.refused += len(found)


def run_worker(db: Database, config: BrokerConfig, limits: StoreLimits, *, worker: IngestWorker | None = None,
               report_every_s: float = 60.0) -> WorkerStats:
    """Run a worker in this thread until it is stopped (Ctrl-C, SIGTERM), logging its counts now and then."""
    worker = worker or IngestWorker(db, config, limits)

    def report() -> None:
        while not worker.stop.wait(report_every_s):
            log.info("ingest worker: %s", worker.stats)

    threading.Thread(target=report, name="ingest-worker-report", daemon=True).start()
    started = time.monotonic()
    try:
        return asyncio.run(worker.run())
    finally:
        worker.stop.set()
        log.info("ingest worker stopped after %.0f s: %s", time.monotonic() - started, worker.stats)
