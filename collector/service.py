"""In-process entry points for other packages (the gateway logs here, with no HTTP hop)."""

from __future__ import annotations

from shiftwatch.collector.ingest import IngestResult, ingest
from shiftwatch.db import Database
from shiftwatch_client.records import PredictionRecord, grouped_columns


def log_predictions(
    db: Database, records: list[PredictionRecord], *, max_rows: int, retention_days: int
) -> IngestResult:
    """Validate and store predictions made in this process, exactly as the HTTP API would.

    ``max_rows`` and ``retention_days`` are SHIFTWATCH_MAX_BATCH_ROWS and SHIFTWATCH_RETENTION_DAYS.
    """
    return ingest(db, grouped_columns(records), max_rows=max_rows, retention_days=retention_days)
