"""In-process entry points for other packages (the gateway logs here, with no HTTP hop)."""

from __future__ import annotations

from shiftwatch.collector.ingest import IngestResult, ingest
from shiftwatch.collector.records import PredictionRecord, grouped_columns
from shiftwatch.db import Database
from shiftwatch.settings import Settings


def log_predictions(db: Database, settings: Settings, records: list[PredictionRecord]) -> IngestResult:
    """Validate and store predictions made in this process, exactly as the HTTP API would."""
    return ingest(
        db, grouped_columns(records), max_rows=settings.max_batch_rows, retention_days=settings.retention_days
    )
