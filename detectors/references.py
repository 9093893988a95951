"""Reference windows pinned per model version: taken from a time range of predictions or uploaded as arrays."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import queries
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.db import float32_bytes
from shiftwatch.detectors.tables import ReferenceWindow
from shiftwatch.errors import Invalid, NotFound

# Fewer samples than this make every two-sample test meaningless; refuse rather than pin it.
MIN_REFERENCE = 50


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """A pinned reference as arrays, with the fingerprint fitted states are tied to."""

    model_version_id: int
    embeddings: np.ndarray | None
    probabilities: np.ndarray | None
    confidence: np.ndarray
    predicted_class: np.ndarray
    labels: np.ndarray | None
    stream_ids: list[str | None] | None
    timestamps: np.ndarray | None  # datetime64[us]
    fingerprint: str

    def __len__(self) -> int:
        return len(self.confidence)


def _check(name: str, array: np.ndarray | None, n: int, ndim: int) -> None:
    if array is None:
        return
    if array.ndim != ndim or array.shape[0] != n:
        raise Invalid(name, f"expected {ndim}-d with {n} rows, got shape {tuple(array.shape)}")
    if not np.all(np.isfinite(array)):
        raise Invalid(name, "contains NaN or infinite values")


def pin(
    session: Session,
    model_version_id: int,
    *,
    confidence: np.ndarray,
    predicted_class: np.ndarray,
    embeddings: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    stream_ids: list[str | None] | None = None,
    timestamps: np.ndarray | None = None,
    source: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ReferenceWindow:
    """Pin (or replace) the reference of a model version; fitted states refit on their next run."""
    version = session.get(ModelVersion, model_version_id)
    if version is None:
        raise NotFound(f"model version {model_version_id} does not exist")
    n = len(confidence)
    if n < MIN_REFERENCE:
        logged = source == "time_range" and embeddings is not None  # rows that kept their embedding, a sample
        hint = "; the rows that kept their embedding (SHIFTWATCH_EMBEDDING_KEEP_RATE): pin a longer range" if logged else ""
        raise Invalid("reference", f"needs at least {MIN_REFERENCE} samples, got {n}{hint}")
    for name, array, ndim in (
        ("embeddings", embeddings, 2),
        ("probabilities", probabilities, 2),
        ("confidence", confidence, 1),
        ("predicted_class", predicted_class, 1),
        ("labels", labels, 1),
    ):
        _check(name, array, n, ndim)
    if stream_ids is not None and len(stream_ids) != n:
        raise Invalid("stream_ids", f"has {len(stream_ids)} entries for {n} samples")
    if timestamps is not None and len(timestamps) != n:
        raise Invalid("timestamps", f"has {len(timestamps)} entries for {n} samples")
    if embeddings is not None and embeddings.shape[1] != version.embedding_dim:
        raise Invalid(
            "embeddings", f"model version has {version.embedding_dim}-d embeddings, got {embeddings.shape[1]}"
        )
    stamps = None if timestamps is None else timestamps.astype("datetime64[us]").astype("<i8").tobytes()
    # Held as stored (float32), so this session's row reads back as a later session's will.
    confidence, predicted_class = np.asarray(confidence, np.float32), np.asarray(predicted_class, np.float32)
    embeddings, probabilities, labels = (
        None if array is None else np.asarray(array, np.float32) for array in (embeddings, probabilities, labels)
    )
    vectors = {
        "embeddings": embeddings,
        "probabilities": probabilities,
        "confidence": confidence,
        "predicted_class": predicted_class,
        "labels": labels,
    }
    # The fingerprint hashes the stored bytes, so fitted states stay valid across releases.
    digest = hashlib.sha256()
    for name, array in vectors.items():
        digest.update(name.encode() + b"\0" + (b"" if array is None else float32_bytes(array)))
    digest.update(b"timestamps\0" + (stamps or b""))
    digest.update(json.dumps(stream_ids).encode())
    row = session.scalar(select(ReferenceWindow).where(ReferenceWindow.model_version_id == model_version_id))
    if row is None:
        row = ReferenceWindow(model_version_id=model_version_id)
        session.add(row)
    row.source, row.start, row.end, row.n = source, start, end, n
    row.embedding_dim = None if embeddings is None else embeddings.shape[1]
    row.num_classes = None if probabilities is None else probabilities.shape[1]
    row.embeddings, row.probabilities = embeddings, probabilities
    row.confidence, row.predicted_class, row.labels = confidence, predicted_class, labels
    row.stream_ids = None if stream_ids is None else list(stream_ids)
    row.timestamps = stamps
    row.fingerprint = digest.hexdigest()
    session.flush()
    return row


def pin_time_range(session: Session, model_version_id: int, start: datetime, end: datetime) -> ReferenceWindow:
    """Pin the production predictions of [start, end) as the reference."""
    if end <= start:
        raise Invalid("end", "must be after start")
    return _pin_window(session, model_version_id, _logged(session, model_version_id, start, end), "time_range", start, end)


def _logged(
    session: Session, model_version_id: int, start: datetime, end: datetime, *, last_n: int | None = None,
    route: str | None = "production",
) -> queries.Window:
    """The rows of [start, end) that kept their embedding (a random sample of them), or every row when
    the version logs no embeddings: a reference must have one per sample, like the windows it is compared with."""
    embedded = queries.window(session, model_version_id, start=start, end=end, last_n=last_n, route=route, embedded=True)
    if len(embedded):
        return embedded
    return queries.window(session, model_version_id, start=start, end=end, last_n=last_n, route=route)


def _pin_window(
    session: Session, model_version_id: int, window: queries.Window, source: str, start: datetime, end: datetime
) -> ReferenceWindow:
    """Pin logged predictions, with their streams and timestamps (the detectors' serial-dependence context)."""
    return pin(
        session,
        model_version_id,
        confidence=window.confidence,
        predicted_class=window.predicted_class,
        embeddings=window.embeddings,
        probabilities=window.probabilities,
        stream_ids=window.stream_id,
        timestamps=window.ts,
        source=source,
        start=start,
        end=end,
    )


# A promoted version's reference holds at most this many of its rollout predictions (the newest):
# more than any detector tests at once (MMD caps a window at 2,000), 10 MB of 512-d embeddings.
MAX_ROLLOUT_REFERENCE = 5000


def pin_rollout_window(session: Session, model_version_id: int, start: datetime, end: datetime) -> ReferenceWindow:
    """Pin what a version served during its rollout (shadow and canary, [start, end]) as its reference.

    That traffic is what people approved it on: after a drift-driven retrain it is the new
    normal, so a later shift of it (not the one it was trained for) is what its detectors see.
    """
    window = _logged(session, model_version_id, start, end, last_n=MAX_ROLLOUT_REFERENCE, route=None)
    return _pin_window(session, model_version_id, window, "rollout", start, end)


def pin_upload(
    session: Session,
    model_version_id: int,
    *,
    embeddings: np.ndarray | None,
    probabilities: np.ndarray | None,
    labels: np.ndarray | None = None,
) -> ReferenceWindow:
    """Pin uploaded arrays; confidence and predicted class come from the probabilities."""
    if probabilities is None:
        raise Invalid("probabilities", "an uploaded reference needs class probabilities (n, k)")
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise Invalid("probabilities", f"expected (n, k>=2), got shape {tuple(probabilities.shape)}")
    return pin(
        session,
        model_version_id,
        confidence=probabilities.max(axis=1),
        predicted_class=probabilities.argmax(axis=1),
        embeddings=embeddings,
        probabilities=probabilities,
        labels=labels,
        source="upload",
    )


def get_row(session: Session, model_version_id: int) -> ReferenceWindow | None:
    return session.scalar(select(ReferenceWindow).where(ReferenceWindow.model_version_id == model_version_id))


def load(session: Session, model_version_id: int) -> ReferenceData | None:
    """The pinned reference as arrays, or None when none is pinned."""
    row = get_row(session, model_version_id)
    if row is None:
        return None

    def matrix(values: np.ndarray | None, width: int | None) -> np.ndarray | None:
        return None if values is None or width is None else values.reshape(row.n, width)

    return ReferenceData(
        model_version_id=model_version_id,
        embeddings=matrix(row.embeddings, row.embedding_dim),
        probabilities=matrix(row.probabilities, row.num_classes),
        confidence=row.confidence.astype(np.float64),
        predicted_class=row.predicted_class.astype(np.int64),
        labels=None if row.labels is None else row.labels.astype(np.int64),
        stream_ids=row.stream_ids,
        timestamps=(
            None if row.timestamps is None else np.frombuffer(row.timestamps, dtype="<i8").astype("datetime64[us]")
        ),
        fingerprint=row.fingerprint,
    )


def parse_npy(field: str, data: bytes) -> np.ndarray:
    """An uploaded ``.npy`` file as a float array; anything else (pickles included) is refused."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:  # noqa: BLE001 - numpy raises several types for a file that is not .npy
        raise Invalid(field, "is not a .npy file") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise Invalid(field, "must be a numeric array")
    return array.astype(np.float64)


def to_out_fields(row: ReferenceWindow) -> dict[str, object]:
    return {
        "model_version_id": row.model_version_id,
        "source": row.source,
        "start": row.start,
        "end": row.end,
        "n": row.n,
        "embedding_dim": row.embedding_dim,
        "num_classes": row.num_classes,
        "has_labels": row.labels is not None,
        "fingerprint": row.fingerprint,
        "created_at": row.created_at,
    }
