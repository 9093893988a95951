"""Background writer: the gateway's predictions and errors go to the database off the response path.

The response never waits for the database. A thread drains a queue every ``flush_interval_s`` (or
at ``max_rows``), stores each input image once in the content-addressed InputStore, and writes the
rows through the collector's in-process ``log_predictions`` in one transaction. ``close()`` drains
everything still queued, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from sqlalchemy import insert

from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.records import PredictionRecord
from shiftwatch.collector.service import log_predictions
from shiftwatch.db import Database, utcnow
from shiftwatch.rollout.images import DecodedInput, stored_bytes
from shiftwatch.rollout.models import ServingError
from shiftwatch.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PendingPrediction:
    record: PredictionRecord
    image: DecodedInput


@dataclass(frozen=True, slots=True)
class PendingError:
    model_version_id: int
    route: str
    request_id: str | None
    error: str


class PredictionLogWriter:
    """One thread, one queue; ``put`` never blocks the caller."""

    # 0.2 s / 512 rows: a multi-row insert of 512 rows takes a few ms, well under one interval.
    def __init__(self, db: Database, settings: Settings, flush_interval_s: float = 0.2, max_rows: int = 512) -> None:
        self.db = db
        self.settings = settings
        self.store = InputStore(settings.data_dir)
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self.written = 0
        self.failed = 0
        self._queue: queue.Queue[PendingPrediction | PendingError | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def put(self, item: PendingPrediction | PendingError) -> None:
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
                for _ in items:
                    self._queue.task_done()

    def _write(self, items: list[PendingPrediction | PendingError]) -> None:
        records: list[PredictionRecord] = []
        errors: list[PendingError] = []
        for item in items:
            if isinstance(item, PendingError):
                errors.append(item)
                continue
            try:
                item.record.input_ref = self.store.put(stored_bytes(item.image), item.image.extension)
            except OSError:
                log.exception("could not store an input image; the prediction is logged without it")
            records.append(item.record)
        try:
            if records:
                log_predictions(self.db, self.settings, records)
            if errors:
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
            self.written += len(records)
        except Exception:  # noqa: BLE001 - the serving path must survive a database hiccup
            self.failed += len(items)
            log.exception("could not log %d gateway rows", len(items))
