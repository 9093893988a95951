"""The client SDK: ``Client.log()`` returns at once; background threads batch, compress and send.

``log()`` raises ``TypeError``/``ValueError`` naming any argument the server would refuse, so a
bad record fails in the caller's hands, never in a sender thread. Delivery is at-least-once
(``transport.send`` retries); a batch the server stays away from is spilled to a file and
replayed later, each file on its own, also across restarts and once more at ``close()``. A
row the server refuses (it stores the batch's other rows) and a batch refused (4xx), failed on (``max_server_errors`` 5xx answers) or that the client itself
fails on is kept in a ``rejected-*`` file with the reason. Nothing is dropped silently;
``flush()`` and ``stats`` say what happened. Imports only numpy and the standard library.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from shiftwatch_client import wire
from shiftwatch_client.records import (
    PredictionRecord,
    as_float,
    as_index,
    as_vector,
    check_known,
    check_record,
    group_key,
    to_columns,
)
from shiftwatch_client.refusals import npz_rows, reason_lines, refused_indices
from shiftwatch_client.sdk_calls import ServerCalls
from shiftwatch_client.spill import SpillDir, default_spill_dir
from shiftwatch_client.transport import Ack, ApiError, Refused, Transport, Unsent, send

__all__ = ["ApiError", "Client", "ClientStats"]

log = logging.getLogger("shiftwatch.client")


@dataclass
class ClientStats:
    """What the client has done so far (read-only for callers). Row counts unless named ``*_batches``.

    Once ``flush()`` returns True: ``logged == stored + duplicates + queued + rejected + spilled``
    (``spilled`` also counts rows waiting from an earlier process on the same spill directory).
    """

    logged: int = 0  # rows log() accepted
    sent: int = 0  # rows in batches the server acknowledged: stored + duplicates + queued
    stored: int = 0
    duplicates: int = 0
    queued: int = 0  # rows a server with an ingest broker took (202); its ingest workers store them
    rejected: int = 0  # rows kept in rejected-* files
    spilled: int = 0  # rows waiting in pending-* files
    sent_batches: int = 0
    retries: int = 0
    spilled_batches: int = 0
    replayed_batches: int = 0
    rejected_batches: int = 0
    last_error: str | None = None
    rejected_files: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Batch:
    """Records of one group key on their way out, with the sequence numbers log() gave them."""

    seqs: np.ndarray
    records: list[PredictionRecord]


@dataclass(frozen=True, slots=True)
class _Failure:
    """The sequence numbers of a batch that was not delivered: a range when contiguous (the usual
    case, 16 bytes however large the batch), else the numbers themselves."""

    first: int
    last: int
    seqs: np.ndarray | None

    @classmethod
    def of(cls, seqs: np.ndarray) -> _Failure:
        first, last = int(seqs.min()), int(seqs.max())
        return cls(first, last, None if last - first + 1 == len(seqs) else seqs)

    def overlaps(self, after: int, upto: int) -> bool:
        """Whether any of its rows has a sequence number in (after, upto]."""
        if self.seqs is None:
            return self.first <= upto and self.last > after
        return bool(((self.seqs > after) & (self.seqs <= upto)).any())


class Client(ServerCalls):
    """Non-blocking logger of predictions to a shiftwatch server; also registers models and versions, pins
    references, adds detectors and reads alerts (``ServerCalls``), raising ``ApiError`` when the server refuses."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        batch_size: int = 256,
        flush_interval_s: float = 0.2,
        compress: bool = True,
        spill_dir: str | os.PathLike[str] | None = None,
        max_retry_s: float = 30.0,
        max_server_errors: int = 8,
        timeout_s: float = 10.0,
        max_buffer: int = 100_000,
        replay_interval_s: float = 5.0,
        concurrency: int = 4,
    ) -> None:
        if max_server_errors < 1:
            raise ValueError(f"max_server_errors must be >= 1, got {max_server_errors}")
        self._num_classes: dict[str, int] = {}
        self._embedding_dims: dict[tuple[str, str], int] = {}
        self._transport = Transport.for_url(url, token=token, timeout_s=timeout_s, compress=compress)
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_retry_s = max_retry_s
        self.max_server_errors = max_server_errors
        self.max_buffer = max_buffer
        self.replay_interval_s = replay_interval_s
        self.spill_dir = Path(spill_dir) if spill_dir is not None else default_spill_dir(self.url)
        self._files = SpillDir(self.spill_dir)
        self.stats = ClientStats(spilled=sum(batch.rows for batch in self._files.pending()))

        self._queue: deque[tuple[int, PredictionRecord]] = deque()
        self._seq = itertools.count(1)
        self._log_lock = threading.Lock()  # keeps the queue in sequence order when many threads log
        self._last_logged = 0
        self._done = threading.Condition()  # guards the in-flight bookkeeping and the counters
        self._in_flight: dict[int, int] = {}  # batch key -> smallest sequence number in it
        self._failed: list[_Failure] = []  # rows spilled or rejected that no flush() has reported yet
        self._reported_upto = 0
        self._wake = threading.Event()
        self._closing = False
        self._next_replay = 0.0
        # Batches in flight at once: one is encoded while another waits for the server (bench/ingest.py).
        self._outbox: queue.Queue[_Batch | None] = queue.Queue(maxsize=concurrency)
        # Daemon threads, so a process that never calls close() still exits: the atexit hook
        # below flushes first and spills what the server does not take.
        self._senders = [
            threading.Thread(target=self._send_loop, name=f"shiftwatch-send-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for sender in self._senders:
            sender.start()
        self._thread = threading.Thread(target=self._run, name="shiftwatch-client", daemon=True)
        self._thread.start()
        atexit.register(self.close, timeout=10.0)

    # ---- the caller's side -------------------------------------------------------------

    def log(
        self,
        model: str,
        version: str,
        predicted_class: int,
        confidence: float,
        *,
        embedding: np.ndarray | list[float] | None = None,
        probabilities: np.ndarray | list[float] | None = None,
        route: str = "production",
        request_id: str | None = None,
        stream_id: str | None = None,
        input_ref: str | None = None,
        latency_ms: float | None = None,
        id: uuid.UUID | None = None,  # noqa: A002 - the record's field name, the SDK's keyword
        ts: datetime | None = None,
    ) -> uuid.UUID:
        """Queue one prediction and return its id at once; the id is its idempotency key.

        Raises ``TypeError``/``ValueError`` naming the argument the server would refuse: a naive
        ``ts`` or one over a day ahead, a NUL character or text past its column's width, NaN/infinity,
        an empty vector, a class past int4; and, for a model or version this client has registered or
        listed, a class past its class count or a vector of the wrong length. A row the server still
        refuses (a ts past retention) is kept with its reason while the rest of its batch is stored.
        A re-send of a prediction must pass the same ``id`` *and* ``ts``.
        """
        if self._closing:
            raise RuntimeError("the client is closed")
        record = PredictionRecord(
            model=model,
            version=version,
            predicted_class=as_index("predicted_class", predicted_class),
            confidence=as_float("confidence", confidence),
            embedding=as_vector("embedding", embedding),
            probabilities=as_vector("probabilities", probabilities),
            route=route,
            request_id=request_id,
            stream_id=stream_id,
            input_ref=input_ref,
            latency_ms=None if latency_ms is None else as_float("latency_ms", latency_ms),
        )
        if id is not None:
            record.id = id
        if ts is not None:
            record.ts = ts
        check_record(record)
        check_known(record, self._num_classes.get(model), self._embedding_dims.get((model, version)))
        with self._log_lock:
            seq = next(self._seq)
            self._queue.append((seq, record))
            self._last_logged = seq
            self.stats.logged += 1
        if len(self._queue) >= self.batch_size:
            self._wake.set()
        return record.id

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything logged so far has been handled. True only if all of it reached the
        server; False on timeout, or if a row logged since the previous flush was spilled or rejected."""
        target = self._last_logged
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            while (self._queue and self._queue[0][0] <= target) or any(
                first <= target for first in self._in_flight.values()
            ):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._done.wait(remaining)
            failed = any(failure.overlaps(self._reported_upto, target) for failure in self._failed)
            self._failed = [failure for failure in self._failed if failure.last > target]
            self._reported_upto = max(self._reported_upto, target)
        return not failed

    def close(self, timeout: float = 30.0) -> None:
        """Flush, replay spilled batches once if the server answers, then stop the threads; whatever
        could not be sent stays in the spill directory for the next Client."""
        if self._closing:
            return
        atexit.unregister(self.close)
        self.flush(timeout)
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pending_spill_files(self) -> list[Path]:
        return [batch.path for batch in self._files.pending()]

    # ---- the batching thread -----------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                while self._queue:
                    for batch in self._claim(self.batch_size):
                        self._outbox.put(batch)  # blocks while every sender is busy
                if self._closing or time.monotonic() >= self._next_replay:
                    self._replay_spilled()  # at close: the one last try
            except Exception as exc:  # the thread must live; claimed rows are finished by senders
                log.exception("shiftwatch client loop failed")
                self.stats.last_error = f"client error: {exc!r}"
            if self._closing and not self._queue:
                for _ in self._senders:
                    self._outbox.put(None)
                for sender in self._senders:
                    sender.join()
                return

    def _claim(self, n: int) -> list[_Batch]:
        """Take up to ``n`` queued rows, grouped into rectangular batches, and mark them in flight."""
        with self._done:
            taken = [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
            groups: dict[tuple, list[tuple[int, PredictionRecord]]] = {}
            for item in taken:
                groups.setdefault(group_key(item[1]), []).append(item)
            batches = []
            for items in groups.values():
                batch = _Batch(np.fromiter((s for s, _ in items), dtype=np.int64), [r for _, r in items])
                self._in_flight[id(batch)] = int(batch.seqs[0])
                batches.append(batch)
            return batches

    def _finish(self, batch: _Batch, failed: np.ndarray) -> None:
        """Mark the batch handled; ``failed`` are the sequence numbers of its rows that did not reach the server."""
        with self._done:
            self._in_flight.pop(id(batch), None)
            if failed.size:
                self._failed.append(_Failure.of(failed))
            self._done.notify_all()

    def _count(self, **deltas: int) -> None:
        with self._done:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    # ---- the sender threads ------------------------------------------------------------

    def _send_loop(self) -> None:
        while (batch := self._outbox.get()) is not None:
            try:
                self._deliver(batch)
            except Exception:  # _deliver already kept the batch; the thread must live
                log.exception("shiftwatch sender failed")

    def _deliver(self, batch: _Batch) -> None:
        """Encode and send one batch; spill it if the server stays away, keep it as rejected otherwise."""
        body, failed = None, batch.seqs
        try:
            body = wire.encode(to_columns(batch.records))
            ack = self._send(body, len(batch.records), give_up_after=self.max_retry_s)
            refused = refused_indices(ack.refusals)
            failed = batch.seqs[refused]
            if refused.size:
                self._keep_refused(body, ack, [batch.records[i] for i in refused.tolist()])
        except Refused as exc:
            self._keep_rejected(body, batch.records, str(exc))
        except Unsent as exc:
            self.stats.last_error = str(exc)
            assert body is not None  # Unsent comes only from _send, after encoding
            try:
                self._spill(body, len(batch.records), exc.server_errors)
            except OSError as disk:  # a full or read-only disk: keep it in the rejected store if that works
                self._keep_rejected(body, batch.records, f"could not spill ({disk}) after: {exc}")
            self._spill_backlog()
        except Exception as exc:  # a bug or a full disk must not lose the batch silently
            log.exception("shiftwatch client failed on a batch")
            self._keep_rejected(body, batch.records, f"client error: {exc!r}")
        finally:
            self._finish(batch, failed)

    def _send(self, body: bytes, rows: int, give_up_after: float, server_errors: int = 0) -> Ack:
        """Send one batch under the retry policy and count what the server says (see ``transport.send``)."""
        ack = send(
            self._transport, body, give_up_after=give_up_after, server_errors=server_errors,
            max_server_errors=self.max_server_errors, stop_when_unreachable=lambda: self._closing,
            on_retry=self._retried,
        )  # fmt: skip
        self._count(sent_batches=1, sent=rows - len(ack.refusals), stored=ack.stored, duplicates=ack.duplicates,
                    queued=ack.queued)
        return ack

    def _keep_refused(self, body: bytes, ack: Ack, records: list[PredictionRecord]) -> bool:
        """Keep the rows the server refused one by one (the others are stored) with each row's reason."""
        refused = refused_indices(ack.refusals)
        message = f"the server refused {refused.size} of the batch's rows:\n{reason_lines(ack.refusals)}"
        try:
            kept = npz_rows(body, refused)
        except Exception as exc:  # noqa: BLE001 - cannot cut the rows out: keep them as JSON lines
            log.warning("shiftwatch could not re-encode refused rows (%r); keeping them as JSON lines", exc)
            return self._keep_rejected(None, records, message, rows=int(refused.size))
        return self._keep_rejected(kept, records, message, rows=int(refused.size))

    def _retried(self, error: str) -> None:
        self._count(retries=1)
        self.stats.last_error = error

    # ---- spill and replay --------------------------------------------------------------

    def _spill(self, body: bytes, rows: int, server_errors: int = 0) -> None:
        self._files.spill(body, rows, server_errors)
        self._count(spilled_batches=1, spilled=rows)
        self._next_replay = time.monotonic() + self.replay_interval_s

    def _spill_backlog(self) -> None:
        """While the server is down, move what piles up past ``max_buffer`` to disk instead of memory."""
        while len(self._queue) > self.max_buffer:
            for batch in self._claim(self.batch_size):
                try:
                    self._spill(wire.encode(to_columns(batch.records)), len(batch.records))
                except Exception as exc:  # noqa: BLE001 - keep the rows and say why
                    self._keep_rejected(None, batch.records, f"client error: {exc!r}")
                finally:
                    self._finish(batch, batch.seqs)

    def _keep_rejected(
        self, body: bytes | None, records: list[PredictionRecord], message: str, rows: int | None = None
    ) -> bool:
        """Keep the rows with the reason and count them as rejected; False if the write failed."""
        path = None
        try:
            path = self._files.reject(body, records, message)
        except Exception as exc:  # noqa: BLE001 - nowhere to keep it: at least the log names every id
            log.error("shiftwatch could not keep a refused batch (%s): %s; ids %s", exc, message,
                      ", ".join(str(r.id) for r in records))  # fmt: skip
            if not records:
                return False  # a spilled batch: its pending file stays, the only copy
        self._count(rejected_batches=1, rejected=len(records) if rows is None else rows)
        self.stats.last_error = message
        if path is not None:
            self.stats.rejected_files.append(str(path))
            log.error("shiftwatch refused a batch; kept in %s: %s", path, message)
        return path is not None

    def _replay_spilled(self) -> None:
        """Send each spilled batch once, oldest first, unless another client holds the directory's replay
        lock. A batch the server fails on is counted and skipped, so it never blocks those behind it; an
        unreachable server ends the pass."""
        self._next_replay = time.monotonic() + self.replay_interval_s
        with self._files.replay_lock() as mine:
            if mine:  # else another client or process on this directory is replaying it: not twice
                self._replay_pending()

    def _replay_pending(self) -> None:
        for pending in self._files.pending():
            try:
                body = pending.path.read_bytes()
            except FileNotFoundError:
                continue  # another Client on the same directory replayed it
            try:
                ack = self._send(body, pending.rows, give_up_after=0, server_errors=pending.server_errors)
                if ack.refusals and not self._keep_refused(body, ack, []):
                    continue  # the pending file stays, the only copy of the refused rows; a re-send is idempotent
            except Refused as exc:
                if not self._keep_rejected(body, [], str(exc), rows=pending.rows):
                    continue  # the pending file stays: it is the only copy
                self._count(spilled=-pending.rows)
            except Unsent as exc:
                if not exc.server_answered:
                    return
                self._files.count_server_error(pending, exc.server_errors)
                continue
            else:
                self._count(replayed_batches=1, spilled=-pending.rows)
            pending.path.unlink(missing_ok=True)
