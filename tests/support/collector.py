"""Shared builders of prediction batches for the collector tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from shiftwatch.collector.ingest import IngestResult
from shiftwatch.collector.service import log_predictions
from shiftwatch.db import Database
from shiftwatch.settings import Settings
from shiftwatch_client import wire
from shiftwatch_client.records import PredictionRecord, to_columns


def store_predictions(db: Database, settings: Settings, batch: list[PredictionRecord]) -> IngestResult:
    """Log ``batch`` in process, under the batch, retention and embedding-keep settings (the gateway's path)."""
    return log_predictions(db, batch, max_rows=settings.max_batch_rows, retention_days=settings.retention_days,
                           embedding_keep_rate=settings.embedding_keep_rate)


def records(n: int, *, dim: int = 64, classes: int = 10, seed: int = 0, **overrides) -> list[PredictionRecord]:
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        probs = rng.dirichlet(np.ones(classes)).astype(np.float32)
        fields = dict(
            model="digits",
            version="v1",
            predicted_class=int(probs.argmax()),
            confidence=float(probs.max()),
            embedding=rng.normal(size=dim).astype(np.float32),
            probabilities=probs,
            request_id=f"req-{i}",
            stream_id=f"cam-{i % 3}",
            input_ref=None,
            latency_ms=float(rng.uniform(1, 5)),
            ts=now - timedelta(seconds=n - i),
        )
        fields.update(overrides)
        out.append(PredictionRecord(**fields))
    return out


def as_json(batch: list[PredictionRecord]) -> dict:
    return {
        "predictions": [
            {
                "id": str(r.id),
                "model": r.model,
                "version": r.version,
                "ts": r.ts.isoformat(),
                "route": r.route,
                "request_id": r.request_id,
                "stream_id": r.stream_id,
                "predicted_class": r.predicted_class,
                "confidence": r.confidence,
                "probabilities": None if r.probabilities is None else r.probabilities.tolist(),
                "embedding": None if r.embedding is None else r.embedding.tolist(),
                "latency_ms": r.latency_ms,
            }
            for r in batch
        ]
    }


def as_npz(batch: list[PredictionRecord]) -> bytes:
    return wire.encode(to_columns(batch))


def new_id() -> uuid.UUID:
    return uuid.uuid4()
