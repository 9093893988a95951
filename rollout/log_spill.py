"""Predictions the gateway answered but could not store while the database was away: kept on disk, replayed.

The gateway answers before it logs; when the database is unreachable (``OperationalError``) the
log writer spills the batch as the SDK does (``.npz`` files under ``data_dir/gateway-spill``) and
replays them once the database answers, oldest first, one replica at a time (the directory's
lock), also after a restart. Rows are keyed on their id, so a replay after a crash mid-commit
stores each row once. Answered = stored, whatever the outage's length (disk permitting).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import OperationalError

from shiftwatch.collector.ingest import ingest
from shiftwatch.db import Database
from shiftwatch.errors import ShiftwatchError
from shiftwatch_client import wire
from shiftwatch_client.records import PredictionRecord, grouped_columns
from shiftwatch_client.spill import SpillDir

log = logging.getLogger(__name__)

SPILL_DIR = "gateway-spill"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    stored: int
    refused: int
    left: int  # rows still on disk (the database went away again)


class LogSpill:
    """The gateway's pending predictions on disk."""

    def __init__(
        self, data_dir: Path, db: Database, *, max_rows: int, retention_days: int, embedding_keep_rate: float = 1.0
    ) -> None:
        self.files = SpillDir(data_dir / SPILL_DIR)
        self.db = db
        self.max_rows = max_rows
        self.retention_days = retention_days
        self.embedding_keep_rate = embedding_keep_rate

    def keep(self, records: list[PredictionRecord]) -> None:
        """Write the records to disk, a file per rectangular group; raises ``OSError`` if the disk refuses."""
        for chunk, _ in grouped_columns(records):
            self.files.spill(wire.encode(chunk), len(chunk))

    def pending_rows(self) -> int:
        return sum(batch.rows for batch in self.files.pending())

    def replay(self) -> ReplayResult:
        """Store every spilled file the database takes; stop at the first ``OperationalError``."""
        stored = refused = 0
        with self.files.replay_lock() as mine:
            if not mine:  # another replica is replaying this directory
                return ReplayResult(0, 0, self.pending_rows())
            for pending in self.files.pending():
                try:
                    batch = wire.decode(pending.path.read_bytes(), max_unpacked_bytes=1 << 30)
                    result = ingest(self.db, [(batch, None)], max_rows=max(self.max_rows, len(batch)),
                                    retention_days=self.retention_days, partial=True,
                                    embedding_keep_rate=self.embedding_keep_rate)  # fmt: skip
                except OperationalError:
                    break
                except (FileNotFoundError, wire.WireError, ShiftwatchError) as exc:
                    log.error("a gateway spill file cannot be stored and is dropped: %s (%s)", pending.path.name, exc)
                    refused += pending.rows
                    pending.path.unlink(missing_ok=True)
                    continue
                for problem in result.refused:
                    log.error("a spilled gateway row is refused: %s: %s", problem.field, problem.reason)
                stored += result.stored
                refused += len(result.refused)
                pending.path.unlink(missing_ok=True)
        return ReplayResult(stored, refused, self.pending_rows())
