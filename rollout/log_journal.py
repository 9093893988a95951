"""A journal of the gateway's answered predictions, so a ``kill -9`` loses none of them (issue 27, item 5).

The gateway answers before its log writer stores the row; a process killed in between lost it.
Each answered row is appended (one ``write``, no fsync: it survives the process, not a power
loss) to the current segment, ``journal-<n>.jsonl``, before the answer goes out. A segment is
deleted once every row in it has been stored or spilled; at start, segments a killed process
left are handed to the spill and replayed (ids make a row already stored a duplicate). The
rows come back without their input image, which the writer had not stored yet.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np

from shiftwatch_client.records import PredictionRecord

JOURNAL_DIR = "gateway-journal"
SEGMENT_ROWS = 2000  # rows per segment before the next one is opened


def _line(record: PredictionRecord) -> bytes:
    fields = {
        "id": str(record.id), "ts": record.ts.isoformat(), "model": record.model, "version": record.version,
        "predicted_class": record.predicted_class, "confidence": record.confidence, "route": record.route,
        "request_id": record.request_id, "stream_id": record.stream_id, "latency_ms": record.latency_ms,
        "embedding": None if record.embedding is None else record.embedding.tolist(),
        "probabilities": None if record.probabilities is None else record.probabilities.tolist(),
    }  # fmt: skip
    return (json.dumps(fields) + "\n").encode()


def _record(line: str) -> PredictionRecord:
    fields = json.loads(line)
    for name in ("embedding", "probabilities"):
        if fields[name] is not None:
            fields[name] = np.asarray(fields[name], dtype=np.float32)
    fields["id"] = uuid.UUID(fields["id"])
    fields["ts"] = datetime.fromisoformat(fields["ts"])
    return PredictionRecord(**fields)


class LogJournal:
    """Segments of answered rows: ``append`` before answering, ``done`` once the writer has handled a row."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / JOURNAL_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._left = self._orphans()  # segments of an earlier process, read by ``recover``
        self._segment = max([int(p.stem.split("-")[1]) for p in self._left], default=0) + 1
        self._open: dict[int, int] = {}  # segment -> rows not yet handled
        self._rows_in_current = 0
        self._file = self._start(self._segment)

    def _orphans(self) -> list[Path]:
        return sorted(self.root.glob("journal-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))

    def _start(self, segment: int) -> int:
        self._open[segment] = 0
        return os.open(self.root / f"journal-{segment}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, record: PredictionRecord) -> int:
        """Write the row to the current segment (whole, one ``write``); returns the segment for ``done``."""
        data = _line(record)
        with self._lock:
            if self._rows_in_current >= SEGMENT_ROWS:
                os.close(self._file)
                self._finish_if_empty(self._segment, closing=True)
                self._segment += 1
                self._rows_in_current = 0
                self._file = self._start(self._segment)
            os.write(self._file, data)
            self._rows_in_current += 1
            self._open[self._segment] += 1
            return self._segment

    def done(self, segment: int) -> None:
        """One row of ``segment`` is stored or spilled; a closed segment with none left is deleted."""
        with self._lock:
            if segment in self._open:
                self._open[segment] -= 1
                self._finish_if_empty(segment, closing=False)

    def _finish_if_empty(self, segment: int, *, closing: bool) -> None:
        if self._open.get(segment) == 0 and (closing or segment != self._segment):
            del self._open[segment]
            (self.root / f"journal-{segment}.jsonl").unlink(missing_ok=True)

    def recover(self) -> list[PredictionRecord]:
        """The rows an earlier process journaled and may not have stored; their segments are then forgotten
        (the caller spills the rows first). A torn last line (killed mid-write) is skipped."""
        records = []
        for path in self._left:
            for line in path.read_text().splitlines():
                try:
                    records.append(_record(line))
                except (ValueError, KeyError, TypeError):
                    continue
        return records

    def forget_recovered(self) -> None:
        for path in self._left:
            path.unlink(missing_ok=True)
        self._left = []

    def close(self) -> None:
        """Idempotent: a second close must not close a descriptor number the OS has since given to another file."""
        with self._lock:
            if self._file < 0:
                return
            os.close(self._file)
            self._file = -1
            self._finish_if_empty(self._segment, closing=True)
