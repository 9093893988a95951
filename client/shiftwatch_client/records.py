"""A prediction as plain Python (what ``Client.log`` queues and in-process callers pass), and its columns.

It also holds the server's limits on a prediction's fields, so the SDK can refuse a bad
record in ``log()`` with the same rules the server applies (numpy and stdlib only).
"""

from __future__ import annotations

import math
import operator
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from shiftwatch_client.wire import ColumnBatch, to_ts_us

ROUTES = ("production", "canary", "shadow")
# The column widths of ``predictions`` and ``model_versions`` (collector/tables.py).
MAX_LENGTHS = {"model": 200, "version": 100, "route": 20, "request_id": 200, "stream_id": 200, "input_ref": 2000}
OPTIONAL_TEXT = ("request_id", "stream_id", "input_ref")
# The most values an embedding (embedding_dim) or a probabilities vector (classes) may have: the same
# bound at registration and per row, so no row can make the server parse more than a model can use.
MAX_VECTOR = 65536
# predicted_class is stored as int4.
MAX_CLASS_INDEX = 2**31 - 1
# How far ahead of the server's clock a ts may be.
FUTURE_SLACK = timedelta(days=1)


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
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on both backends, or None. PostgreSQL refuses NUL
    characters and text that is not UTF-8 (lone surrogates); SQLite would store them, so both refuse."""
    if "\x00" in value:
        return "contains a NUL character (\\x00)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text (a lone surrogate)"
    return None


def _check_text(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value and not optional:
        raise ValueError(f"{name} must not be empty")
    if len(value) > MAX_LENGTHS[name]:
        raise ValueError(f"{name} is {len(value)} characters, over the server's limit of {MAX_LENGTHS[name]}")
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{name} {problem}")


def _check_vector(name: str, value: np.ndarray | None) -> None:
    if value is None:
        return
    if value.size == 0:
        raise ValueError(f"{name} is empty")
    if value.size > MAX_VECTOR:
        raise ValueError(f"{name} has {value.size} values, over the server's limit of {MAX_VECTOR}")
    # One float64 sum instead of an isfinite pass: NaN and infinity propagate, and float64 cannot
    # overflow on float32 values, so it is exact and ~5x cheaper on 512 values (measured).
    if not math.isfinite(float(value.sum(dtype=np.float64))):
        raise ValueError(f"{name} contains NaN or infinity")


def check_record(record: PredictionRecord) -> None:
    """Raise ``TypeError``/``ValueError`` naming the first field the server would refuse.

    Cheap (a few microseconds for 512-d vectors): ``Client.log`` runs it on every call, so a
    bad record fails in the caller's hands instead of in a background thread.
    """
    _check_text("model", record.model, optional=False)
    _check_text("version", record.version, optional=False)
    _check_text("route", record.route, optional=False)
    if record.route not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {record.route!r}")
    for name in OPTIONAL_TEXT:
        _check_text(name, getattr(record, name), optional=True)
    if not isinstance(record.id, uuid.UUID):
        raise TypeError(f"id must be a uuid.UUID, got {type(record.id).__name__}")
    if not isinstance(record.ts, datetime):
        raise TypeError(f"ts must be a datetime, got {type(record.ts).__name__}")
    offset = record.ts.utcoffset()  # asked once: a tzinfo may answer differently on a second call
    if offset is None:
        raise ValueError("ts must be timezone-aware (e.g. datetime.now(timezone.utc)); a naive time is ambiguous")
    if not 0 <= record.predicted_class <= MAX_CLASS_INDEX:
        raise ValueError(f"predicted_class must be in [0, {MAX_CLASS_INDEX}], got {record.predicted_class}")
    if record.ts.replace(tzinfo=None) - offset - datetime.now(UTC).replace(tzinfo=None) > FUTURE_SLACK:
        raise ValueError(f"ts {record.ts.isoformat()} is over a day in the future; the server refuses it (check the clock)")
    if not 0.0 <= record.confidence <= 1.0:  # also false for NaN
        raise ValueError(f"confidence must be a finite number in [0, 1], got {record.confidence}")
    if record.latency_ms is not None and not (math.isfinite(record.latency_ms) and record.latency_ms >= 0):
        raise ValueError(f"latency_ms must be a finite, non-negative number, got {record.latency_ms}")
    _check_vector("embedding", record.embedding)
    _check_vector("probabilities", record.probabilities)


def check_known(record: PredictionRecord, num_classes: int | None, embedding_dim: int | None) -> None:
    """Raise ``ValueError`` where the record does not fit its model (classes) or version (embedding
    size) as the client has seen them; ``None`` where it has not seen them (the server checks)."""
    if num_classes is not None:
        if record.predicted_class >= num_classes:
            raise ValueError(
                f"predicted_class {record.predicted_class} is outside [0, {num_classes}): "
                f"model {record.model!r} has {num_classes} classes"
            )
        if record.probabilities is not None and record.probabilities.size != num_classes:
            raise ValueError(
                f"probabilities has {record.probabilities.size} values; model {record.model!r} has {num_classes} classes"
            )
    if embedding_dim is not None and record.embedding is not None and record.embedding.size != embedding_dim:
        raise ValueError(
            f"embedding has {record.embedding.size} values; version {record.model}:{record.version} "
            f"expects {embedding_dim}"
        )


def as_index(name: str, value: object) -> int:
    """An integer argument (Python or numpy int); a float such as 3.7 is refused, not truncated."""
    try:
        return operator.index(value)  # type: ignore[arg-type]  # any object: index() is the check
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def as_float(name: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]  # any object: float() is the check
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None


def as_vector(name: str, value: object) -> np.ndarray | None:
    """A float32 copy of a vector argument, flattened (the caller may reuse its buffer)."""
    if value is None:
        return None
    try:
        return np.array(value, dtype=np.float32, copy=True).ravel()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of numbers ({exc})") from None


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
        embeddings=None if first.embedding is None else np.stack([r.embedding for r in records]).astype(np.float32),  # type: ignore[misc]  # one group_key: all or none have it
        probabilities=(
            None if first.probabilities is None else np.stack([r.probabilities for r in records]).astype(np.float32)  # type: ignore[misc]  # as embeddings
        ),
    )


def grouped_columns(records: list[PredictionRecord]) -> list[tuple[ColumnBatch, np.ndarray]]:
    """Split mixed records into rectangular column batches, each with its rows' original positions."""
    groups: dict[tuple, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(group_key(record), []).append(index)
    return [(to_columns([records[i] for i in idx]), np.asarray(idx)) for idx in groups.values()]
