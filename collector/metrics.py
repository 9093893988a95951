"""Prometheus metrics of the ingest path (served at ``/metrics``)."""

from prometheus_client import Counter, Histogram

INGESTED = Counter("shiftwatch_predictions_ingested", "Predictions stored (duplicates excluded)", ["model"])
DUPLICATES = Counter("shiftwatch_predictions_duplicate", "Predictions ignored as re-sent duplicates")
REJECTED = Counter("shiftwatch_predictions_rejected", "Predictions in batches refused as invalid", ["reason"])
INGEST_SECONDS = Histogram(
    "shiftwatch_ingest_seconds",
    "Time to validate and store one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUEUED = Counter(
    "shiftwatch_predictions_queued", "Predictions published to the ingest broker (stored later by an ingest worker)"
)
