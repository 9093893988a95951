"""Reading predictions back: pages for the API, windows (as arrays) for the detectors."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import Prediction
from shiftwatch.errors import Invalid


@dataclass(frozen=True, slots=True)
class Window:
    """A slice of one model version's predictions as arrays, oldest first."""

    ids: list[uuid.UUID]
    ts: np.ndarray  # datetime64[us], UTC
    predicted_class: np.ndarray
    confidence: np.ndarray
    embeddings: np.ndarray | None  # (n, d) float32; None if no row carries one
    probabilities: np.ndarray | None  # (n, k) float32
    stream_id: list[str | None]
    request_id: list[str | None]
    input_ref: list[str | None]
    latency_ms: np.ndarray
    # Each row's embedding or None: where only a sample kept one (collector.embedding_keep), ``embeddings`` is None.
    embedding_rows: tuple[np.ndarray | None, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)

    def embedding(self, i: int) -> np.ndarray | None:
        """Row ``i``'s embedding, None if it did not keep one."""
        if self.embeddings is not None:
            return self.embeddings[i]
        return self.embedding_rows[i] if self.embedding_rows else None


def window(
    session: Session,
    model_version_id: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    last_n: int | None = None,
    route: str | None = "production",
    embedded: bool = False,
) -> Window:
    """Predictions of one version in [start, end), or the last ``last_n`` of them.

    With ``embedded`` only rows that kept their embedding (``collector.embedding_keep``): what the
    embedding detectors read, so their ``last_n`` counts embeddings, not rows. Without it every
    row, and ``embeddings`` is None unless all of them kept one.
    """
    stmt = select(Prediction).where(Prediction.model_version_id == model_version_id)
    if embedded:  # served by the partial index ix_predictions_version_ts_embedded (collector_0004)
        stmt = stmt.where(Prediction.embedding.is_not(None))
    if route is not None:
        stmt = stmt.where(Prediction.route == route)
    if start is not None:
        stmt = stmt.where(Prediction.ts >= start)
    if end is not None:
        stmt = stmt.where(Prediction.ts < end)
    if last_n is not None:
        stmt = stmt.order_by(Prediction.ts.desc(), Prediction.id.desc()).limit(last_n)
        rows = list(reversed(session.scalars(stmt).all()))
    else:
        rows = list(session.scalars(stmt.order_by(Prediction.ts, Prediction.id)))
    return rows_to_window(rows)


def rows_to_window(rows: list[Prediction]) -> Window:
    def matrix(vectors: list[np.ndarray | None]) -> np.ndarray | None:
        present = [v for v in vectors if v is not None]
        if not present or len(present) != len(vectors):
            return None
        return np.stack(present)

    return Window(
        ids=[r.id for r in rows],
        ts=np.asarray([r.ts.replace(tzinfo=None) for r in rows], dtype="datetime64[us]"),
        predicted_class=np.asarray([r.predicted_class for r in rows], dtype=np.int64),
        confidence=np.asarray([r.confidence for r in rows], dtype=np.float64),
        embeddings=matrix([r.embedding for r in rows]),
        probabilities=matrix([r.probabilities for r in rows]),
        stream_id=[r.stream_id for r in rows],
        request_id=[r.request_id for r in rows],
        input_ref=[r.input_ref for r in rows],
        latency_ms=np.asarray([np.nan if r.latency_ms is None else r.latency_ms for r in rows], dtype=np.float64),
        embedding_rows=tuple(r.embedding for r in rows),
    )


def count(session: Session, model_version_id: int, route: str | None = None) -> int:
    stmt = select(func.count()).select_from(Prediction).where(Prediction.model_version_id == model_version_id)
    if route is not None:
        stmt = stmt.where(Prediction.route == route)
    return int(session.scalar(stmt) or 0)


def encode_cursor(ts: datetime, prediction_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{ts.isoformat()}|{prediction_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        ts_text, id_text = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(ts_text), uuid.UUID(id_text)
    except Exception:  # noqa: BLE001 - whatever the decoding raises, the cursor is not ours
        raise Invalid("cursor", "is not a cursor this server handed out") from None


def page(
    session: Session,
    model_version_id: int,
    *,
    start: datetime | None,
    end: datetime | None,
    route: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Prediction], str | None]:
    """One page of predictions in (ts, id) order, keyset-paginated so deep pages stay cheap."""
    stmt = select(Prediction).where(Prediction.model_version_id == model_version_id)
    if start is not None:
        stmt = stmt.where(Prediction.ts >= start)
    if end is not None:
        stmt = stmt.where(Prediction.ts < end)
    if route is not None:
        stmt = stmt.where(Prediction.route == route)
    if cursor is not None:
        after_ts, after_id = decode_cursor(cursor)
        stmt = stmt.where(or_(Prediction.ts > after_ts, and_(Prediction.ts == after_ts, Prediction.id > after_id)))
    rows = list(session.scalars(stmt.order_by(Prediction.ts, Prediction.id).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].ts, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def recent_window_bounds(minutes: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    return now - timedelta(minutes=minutes), now
