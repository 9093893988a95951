"""In-process entry points for other packages (the gateway logs here, with no HTTP hop)."""

from __future__ import annotations

from shiftwatch.collector.ingest import IngestResult, ingest
from shiftwatch.db import Database
from shiftwatch_client.records import PredictionRecord, grouped_columns


def log_predictions(
    db: Database, records: list[PredictionRecord], *, max_rows: int, retention_days: int, embedding_keep_rate: float = 1.0
) -> IngestResult:
    """Validate and store predictions made in this process, exactly as the HTTP API would.

    ``max_rows``, ``retention_days`` and ``embedding_keep_rate`` are SHIFTWATCH_MAX_BATCH_ROWS,
    SHIFTWATCH_RETENTION_DAYS and SHIFTWATCH_EMBEDDING_KEEP_RATE (1.0 here: keep every embedding unless told).
    """
    return ingest(db, grouped_columns(records), max_rows=max_rows, retention_days=retention_days,
                  embedding_keep_rate=embedding_keep_rate)
