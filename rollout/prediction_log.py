"""Background writer: the gateway's predictions and errors go to the database off the response path.

The response never waits for the database. A thread drains a queue every ``flush_interval_s`` (or
at ``max_rows``), stores each input image once in the content-addressed InputStore, and writes the
rows through the collector's in-process ``log_predictions`` in one transaction; if that transaction
fails, row by row, so one unstorable row never takes the others with it. While the database is
unreachable, answered rows are spilled to disk and replayed when it is back (rollout/log_spill.py).
``close()`` drains everything still queued, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from shiftwatch.collector.broker import BrokerPublisher, BrokerUnavailable
from shiftwatch.collector.ingest import MAX_LENGTHS, check
from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.service import log_predictions
from shiftwatch.db import Database, utcnow
from shiftwatch.errors import Invalid, TooLarge
from shiftwatch.rollout.images import DecodedInput, stored_bytes
from shiftwatch.rollout.log_journal import LogJournal
from shiftwatch.rollout.log_spill import LogSpill
from shiftwatch.rollout.routing import REQUEST_ID_HEADER, STREAM_ID_HEADER
from shiftwatch.rollout.tables import ServingError
from shiftwatch_client.records import PredictionRecord, grouped_columns

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PendingPrediction:
    record: PredictionRecord
    image: DecodedInput
    segment: int = -1  # the journal segment holding it (rollout/log_journal.py)


@dataclass(frozen=True, slots=True)
class PendingError:
    model_version_id: int
    route: str
    request_id: str | None
    error: str


def check_log_metadata(*, request_id: str | None, stream_id: str | None) -> None:
    """Refuse, before the client is answered, metadata the predictions table cannot store.

    Checked per request so a bad header is that client's 422: queued, it would fail the shared
    batch it lands in (issue 16: one 201-character request id hid up to 20 other clients' rows).
    """
    for header, value in ((REQUEST_ID_HEADER, request_id), (STREAM_ID_HEADER, stream_id)):
        if value is None:
            continue
        limit = MAX_LENGTHS[header.removeprefix("x-").replace("-", "_")]
        if len(value) > limit:
            raise Invalid(header, f"{len(value)} characters, longer than the {limit} the log stores")
        if "\x00" in value:
            raise Invalid(header, "contains a NUL character")


class PredictionLogWriter:
    """One thread, one queue; ``put`` never blocks the caller."""

    # 0.2 s / 512 rows: a multi-row insert of 512 rows takes a few ms, well under one interval.
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        *,
        input_max_bytes: int,
        ingest_max_rows: int,
        retention_days: int,
        embedding_keep_rate: float = 1.0,
        flush_interval_s: float = 0.2,
        max_rows: int = 512,
        replay_interval_s: float = 2.0,
        broker: BrokerPublisher | None = None,
    ) -> None:
        """The limits are SHIFTWATCH_INPUT_MAX_BYTES, SHIFTWATCH_MAX_BATCH_ROWS, SHIFTWATCH_RETENTION_DAYS and
        SHIFTWATCH_EMBEDDING_KEEP_RATE; with ``broker`` (SHIFTWATCH_INGEST_BROKER_URL) rows are validated here and
        published, not stored (the ingest workers apply the keep rate)."""
        self.db = db
        self.broker = broker
        self.store = InputStore(data_dir)
        self.input_max_bytes = input_max_bytes
        self.ingest_max_rows = ingest_max_rows
        self.retention_days = retention_days
        self.embedding_keep_rate = embedding_keep_rate
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self.written = 0
        self.failed = 0
        self.inputs_refused = 0  # predictions logged without their image: over SHIFTWATCH_INPUT_MAX_BYTES
        self.spill = LogSpill(data_dir, db, max_rows=ingest_max_rows, retention_days=retention_days,
                              embedding_keep_rate=embedding_keep_rate)
        self.journal = LogJournal(data_dir)
        recovered = self.journal.recover()  # answered by a process killed before it stored them
        if recovered:
            self.spill.keep(recovered)
            log.warning("%d gateway predictions journaled by an earlier process are replayed", len(recovered))
        self.journal.forget_recovered()
        self.spilled = self.spill.pending_rows()  # rows on disk, waiting for the database (a previous run's too)
        self.replay_interval_s = replay_interval_s
        self._next_replay = 0.0
        self._queue: queue.Queue[PendingPrediction | PendingError | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def put(self, item: PendingPrediction | PendingError) -> None:
        """Queue a row; a prediction is journaled first, so a killed process does not lose it once answered."""
        if isinstance(item, PendingPrediction):
            item = replace(item, segment=self.journal.append(item.record))
        self._queue.put(item)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Block until everything queued so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)
        self.journal.close()
        if self.broker is not None:
            self.broker.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items: list[PendingPrediction | PendingError] = []
            deadline = time.monotonic() + self.flush_interval_s
            while len(items) < self.max_rows:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.task_done()
                    stopping = True
                    break
                items.append(item)
            if items:
                self._write(items)
                for item in items:
                    if isinstance(item, PendingPrediction):
                        self.journal.done(item.segment)
                    self._queue.task_done()
            if self.spilled and (stopping or time.monotonic() >= self._next_replay):
                self._replay()

    def _replay(self) -> None:
        self._next_replay = time.monotonic() + self.replay_interval_s
        try:
            result = self.spill.replay()
        except Exception:  # the writer must live; the files stay for the next pass
            log.exception("replaying the gateway's spilled predictions failed")
            return
        self.written += result.stored
        self.failed += result.refused
        self.spilled = result.left

    def _write(self, items: list[PendingPrediction | PendingError]) -> None:
        records: list[PredictionRecord] = []
        errors: list[PendingError] = []
        refs: dict[int, str] = {}  # a production answer and its shadow copy share one input: store it once
        for item in items:
            if isinstance(item, PendingError):
                errors.append(item)
                continue
            try:
                if id(item.image) not in refs:
                    image = stored_bytes(item.image, self.input_max_bytes)
                    refs[id(item.image)] = self.store.put(image, item.image.extension)
                item.record.input_ref = refs[id(item.image)]
            except TooLarge as exc:
                self.inputs_refused += 1
                log.warning("input image not stored, the prediction is logged without it: %s", exc.message)
            except (OSError, ValueError, SyntaxError):  # a disk error, or a file PIL read once but not twice
                log.exception("could not store an input image; the prediction is logged without it")
            records.append(item.record)
        if records:
            self._store(records, self._log, "prediction")
        if errors:
            self._store(errors, self._insert_errors, "serving error")

    def _log(self, records: list[PredictionRecord]) -> None:
        if self.broker is None:
            log_predictions(self.db, records, max_rows=self.ingest_max_rows, retention_days=self.retention_days,
                            embedding_keep_rate=self.embedding_keep_rate)
            return
        checked = check(self.db, grouped_columns(records), max_rows=self.ingest_max_rows,
                        retention_days=self.retention_days)  # fmt: skip
        self.broker.publish_wait([chunk for chunk, _, _ in checked.kept])

    def _store(self, rows: list[PredictionRecord] | list[PendingError], write: Callable[[list], object], what: str
               ) -> None:
        """Write the rows in one transaction; if that fails, row by row, so one bad row loses only itself."""
        try:
            write(rows)
            self.written += len(rows)
            return
        except (OperationalError, BrokerUnavailable):  # the database or broker is down: one by one fails the same way
            if what == "prediction" and self._spill(rows):  # type: ignore[arg-type]  # predictions only
                return
            self.failed += len(rows)
            log.exception("could not log %d gateway %s rows: database unavailable", len(rows), what)
            return
        except Exception:  # find the bad row(s) below; the serving path must survive
            if len(rows) == 1:
                self.failed += 1
                log.exception("could not log a gateway %s row", what)
                return
            log.warning("a batch of %d gateway %s rows failed; storing them one by one", len(rows), what)
        for row in rows:
            try:
                write([row])
                self.written += 1
            except Exception:  # this row alone is lost, and said so
                self.failed += 1
                log.exception("could not log a gateway %s row (request id %r)", what, row.request_id)

    def _spill(self, records: list[PredictionRecord]) -> bool:
        """Keep answered predictions on disk until the database is back; False if the disk refuses too."""
        try:
            self.spill.keep(records)
        except OSError:
            log.exception("could not spill %d gateway predictions", len(records))
            return False
        self.spilled += len(records)
        self._next_replay = time.monotonic() + self.replay_interval_s
        log.warning("database unavailable: %d gateway predictions spilled to disk, replayed when it is back", len(records))
        return True

    def _insert_errors(self, errors: list[PendingError]) -> None:
        with self.db.session() as session:
            now = utcnow()
            session.execute(
                insert(ServingError),
                [
                    {
                        "model_version_id": e.model_version_id,
                        "route": e.route,
                        "request_id": e.request_id,
                        "error": e.error[:2000],
                        "ts": now,
                    }
                    for e in errors
                ],
            )
