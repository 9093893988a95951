"""A prediction as plain Python (what ``Client.log`` queues and in-process callers pass), and its columns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from shiftwatch.collector.wire import ColumnBatch, to_ts_us


@dataclass(slots=True)
class PredictionRecord:
    """One prediction, as the SDK and the gateway produce it. ``id`` and ``ts`` are fixed at creation."""

    model: str
    version: str
    predicted_class: int
    confidence: float
    embedding: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    route: str = "production"
    request_id: str | None = None
    stream_id: str | None = None
    input_ref: str | None = None
    latency_ms: float | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    ts: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def group_key(record: PredictionRecord) -> tuple:
    """Records with equal keys fit in one rectangular column batch."""
    return (
        record.model,
        record.version,
        None if record.embedding is None else record.embedding.shape[0],
        None if record.probabilities is None else record.probabilities.shape[0],
    )


def to_columns(records: list[PredictionRecord]) -> ColumnBatch:
    """Columns of records that share a ``group_key``."""

    def strings(name: str) -> np.ndarray:
        return np.asarray([getattr(r, name) or "" for r in records], dtype=np.str_)

    first = records[0]
    return ColumnBatch(
        ids=np.frombuffer(b"".join(r.id.bytes for r in records), dtype=np.uint8).reshape(len(records), 16),
        ts_us=np.asarray([to_ts_us(r.ts) for r in records], dtype=np.int64),
        model=strings("model"),
        version=strings("version"),
        route=strings("route"),
        request_id=strings("request_id"),
        stream_id=strings("stream_id"),
        input_ref=strings("input_ref"),
        predicted_class=np.asarray([r.predicted_class for r in records], dtype=np.int64),
        confidence=np.asarray([r.confidence for r in records], dtype=np.float64),
        latency_ms=np.asarray([np.nan if r.latency_ms is None else r.latency_ms for r in records], dtype=np.float64),
        embeddings=None if first.embedding is None else np.stack([r.embedding for r in records]).astype(np.float32),
        probabilities=(
            None if first.probabilities is None else np.stack([r.probabilities for r in records]).astype(np.float32)
        ),
    )


def grouped_columns(records: list[PredictionRecord]) -> list[tuple[ColumnBatch, np.ndarray]]:
    """Split mixed records into rectangular column batches, each with its rows' original positions."""
    groups: dict[tuple, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(group_key(record), []).append(index)
    return [(to_columns([records[i] for i in idx]), np.asarray(idx)) for idx in groups.values()]
