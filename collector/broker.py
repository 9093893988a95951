"""Ingest through NATS JetStream: validated batches are published, and answered once JetStream holds them.

With ``SHIFTWATCH_INGEST_BROKER_URL`` set, the API and the gateway publish what they validated to a
JetStream stream instead of writing it; ``shiftwatch ingest-worker`` processes store it
(collector/ingest_worker.py). Each message carries one ``.npz`` batch (collector/wire.py) and a
``Nats-Msg-Id`` made from its rows' ids and timestamps, so a re-sent batch inside JetStream's duplicate
window is dropped by the server, and one past it is a duplicate for the idempotent store.
nats-py is the optional ``[broker]`` extra, imported only when a broker is configured.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftwatch.errors import ShiftwatchError, TooLarge, Unavailable
from shiftwatch_client import wire
from shiftwatch_client.wire import ColumnBatch

if TYPE_CHECKING:
    from shiftwatch.settings import Settings

# JetStream drops a message whose Nats-Msg-Id it stored within this window (seconds).
DUPLICATE_WINDOW_S = 120.0
# Room left in a message for its headers and JetStream's own.
HEADER_ROOM_BYTES = 4096


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where batches go: the server(s), the stream and subject, the workers' durable consumer."""

    url: str
    stream: str
    subject: str
    consumer: str
    ack_wait_s: float
    timeout_s: float

    @property
    def dead_stream(self) -> str:
        return f"{self.stream}_DEAD"

    @property
    def dead_subject(self) -> str:
        return f"{self.subject}.dead"

    @classmethod
    def of(cls, settings: Settings) -> BrokerConfig | None:
        """The broker the settings name, or None (the direct path)."""
        if settings.ingest_broker_url is None:
            return None
        return cls(
            url=settings.ingest_broker_url, stream=settings.ingest_broker_stream,
            subject=settings.ingest_broker_subject, consumer=settings.ingest_broker_consumer,
            ack_wait_s=settings.ingest_broker_ack_wait_s, timeout_s=settings.ingest_broker_publish_timeout_s,
        )  # fmt: skip


class BrokerUnavailable(Unavailable):
    """JetStream did not take a batch (server down, no JetStream, no ack in time): the caller retries later."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the ingest broker is unavailable ({why}); retry later", retry_after_s=1.0)


def nats_module() -> Any:
    """nats-py, or a clear error naming the extra to install."""
    try:
        import nats
    except ImportError:
        raise ShiftwatchError(
            "SHIFTWATCH_INGEST_BROKER_URL is set but nats-py is not installed: pip install 'shiftwatch[broker]'"
        ) from None
    return nats


async def connect(config: BrokerConfig) -> Any:
    """A connection that keeps reconnecting while the server restarts (publishes and fetches fail meanwhile)."""
    nats = nats_module()

    async def quiet(_: Exception) -> None:  # the client logs each failed try; the caller's error says it once
        return None

    try:
        # Once connected it retries for ever; the first connection is bounded (nats-py would retry it too).
        return await asyncio.wait_for(nats.connect(
            servers=[part.strip() for part in config.url.split(",")], connect_timeout=config.timeout_s,
            max_reconnect_attempts=-1, reconnect_time_wait=0.25, allow_reconnect=True, error_cb=quiet,
        ), timeout=config.timeout_s * 2)  # fmt: skip
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        raise BrokerUnavailable(f"cannot connect to {config.url}: {type(exc).__name__}") from None


async def ensure_streams(js: Any, config: BrokerConfig) -> None:
    """Create the work-queue stream (a message leaves once a worker acks it) and the dead-letter stream."""
    from nats.js import api
    from nats.js.errors import NotFoundError

    for name, subject, retention in (
        (config.stream, config.subject, api.RetentionPolicy.WORK_QUEUE),
        (config.dead_stream, config.dead_subject, api.RetentionPolicy.LIMITS),
    ):
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(name=name, subjects=[subject], retention=retention, storage=api.StorageType.FILE,
                                duplicate_window=DUPLICATE_WINDOW_S)  # fmt: skip


def message_id(batch: ColumnBatch) -> str:
    """The same rows (ids and timestamps) give the same id, whoever sends them and however often."""
    digest = hashlib.sha256(np.ascontiguousarray(batch.ids).tobytes())
    digest.update(np.ascontiguousarray(batch.ts_us, dtype=np.int64).tobytes())
    return digest.hexdigest()[:40]


def messages(batch: ColumnBatch, max_payload: int) -> list[tuple[bytes, str]]:
    """The batch as (payload, message id) pieces under the server's payload limit, split by rows."""
    payload = wire.encode(batch)
    if len(payload) <= max_payload - HEADER_ROOM_BYTES:
        return [(payload, message_id(batch))]
    if len(batch) == 1:
        raise TooLarge(f"one prediction encodes to {len(payload)} bytes, over the broker's {max_payload}-byte messages")
    half = len(batch) // 2
    return messages(batch.take(np.arange(half)), max_payload) + messages(batch.take(np.arange(half, len(batch))),
                                                                        max_payload)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Backlog:
    """Messages waiting for an ingest worker, delivered but not yet acked (stored), and dead letters kept."""

    pending: int
    unacked: int
    dead_letters: int


class BrokerPublisher:
    """One NATS connection on its own event-loop thread, shared by the API's requests and the gateway's writer.

    Connected on first use, so a process starts while the broker is still coming up; each publish
    waits for JetStream's ack, so what a caller was told is taken is on the stream's disk.
    """

    def __init__(self, config: BrokerConfig) -> None:
        nats_module()  # fail at start-up, not on the first batch, when the extra is missing
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ingest-broker", daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._connecting: asyncio.Lock | None = None

    async def _jetstream(self) -> Any:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._nc is None or self._nc.is_closed:
                self._nc = await connect(self.config)
                self._js = self._nc.jetstream(timeout=self.config.timeout_s)
                await ensure_streams(self._js, self.config)
        return self._js

    async def _publish(self, batches: Sequence[ColumnBatch]) -> int:
        import nats.errors

        try:
            js = await self._jetstream()
            pieces = [piece for batch in batches for piece in messages(batch, self._nc.max_payload)]
            await asyncio.gather(*(
                js.publish(self.config.subject, payload, timeout=self.config.timeout_s, stream=self.config.stream,
                           headers={"Nats-Msg-Id": msg_id})
                for payload, msg_id in pieces
            ))  # fmt: skip
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise BrokerUnavailable(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from None
        return sum(len(batch) for batch in batches)

    def submit(self, batches: Sequence[ColumnBatch]) -> concurrent.futures.Future[int]:
        """Publish from any thread; the future holds the rows JetStream took (or BrokerUnavailable)."""
        return asyncio.run_coroutine_threadsafe(self._publish(batches), self._loop)

    async def publish(self, batches: Sequence[ColumnBatch]) -> int:
        """Publish from another event loop (the API's) without blocking it."""
        return await asyncio.wrap_future(self.submit(batches))

    def publish_wait(self, batches: Sequence[ColumnBatch]) -> int:
        """Publish from a plain thread (the gateway's log writer), blocking until JetStream acks."""
        try:
            return self.submit(batches).result(timeout=self.config.timeout_s * 3)
        except concurrent.futures.TimeoutError:
            raise BrokerUnavailable("no publish ack in time") from None

    async def _backlog(self) -> Backlog:
        from nats.js.errors import NotFoundError

        js = await self._jetstream()
        dead = await js.stream_info(self.config.dead_stream)
        try:
            consumer = await js.consumer_info(self.config.stream, self.config.consumer)
        except NotFoundError:  # no worker has started yet: everything on the stream waits
            waiting = await js.stream_info(self.config.stream)
            return Backlog(int(waiting.state.messages), 0, int(dead.state.messages))
        return Backlog(int(consumer.num_pending), int(consumer.num_ack_pending), int(dead.state.messages))

    def backlog(self) -> Backlog:
        """What the ingest workers have not stored yet, from JetStream's own consumer state (for /metrics)."""
        try:
            return asyncio.run_coroutine_threadsafe(self._backlog(), self._loop).result(timeout=self.config.timeout_s)
        except Exception as exc:  # a scrape must not fail on the broker: the caller reports what it could not read
            raise BrokerUnavailable(type(exc).__name__ + (f": {exc}" if str(exc) else "")) from None

    def close(self) -> None:
        async def _close() -> None:
            if self._nc is not None and not self._nc.is_closed:
                await self._nc.close()

        with contextlib.suppress(Exception):  # closing a dead connection must not fail a shutdown
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def broker_publisher(settings: Settings) -> BrokerPublisher | None:
    """The publisher the settings ask for (SHIFTWATCH_INGEST_BROKER_URL), or None for the direct path."""
    config = BrokerConfig.of(settings)
    return None if config is None else BrokerPublisher(config)
