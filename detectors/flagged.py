"""Flagged samples for the labeling queue: a plain function over a table, no HTTP hop, no FK into predictions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.detectors.tables import DriftRun, FlaggedSample


@dataclass(frozen=True, slots=True)
class Flagged:
    """A prediction a drift run found most unlike the reference (score: higher = less typical)."""

    id: int
    prediction_id: uuid.UUID
    ts: datetime
    model_version_id: int
    input_ref: str | None
    score: float
    reason: str
    detector: str  # the method that flagged it (e.g. "mmd")
    drift_run_id: int
    flagged_at: datetime


def flagged_samples(session: Session, model_version_id: int, since: datetime | None = None) -> list[Flagged]:
    """Samples flagged for ``model_version_id`` (after ``since``, exclusive), oldest flag first, strongest first within a run."""
    stmt = (
        select(FlaggedSample, DriftRun.detector)
        .join(DriftRun, DriftRun.id == FlaggedSample.drift_run_id)
        .where(FlaggedSample.model_version_id == model_version_id)
    )
    if since is not None:
        stmt = stmt.where(FlaggedSample.created_at > since)
    stmt = stmt.order_by(
        FlaggedSample.created_at, FlaggedSample.drift_run_id, FlaggedSample.score.desc(), FlaggedSample.id
    )
    return [
        Flagged(
            id=row.id,
            prediction_id=row.prediction_id,
            ts=row.ts,
            model_version_id=row.model_version_id,
            input_ref=row.input_ref,
            score=row.score,
            reason=row.reason,
            detector=detector,
            drift_run_id=row.drift_run_id,
            flagged_at=row.created_at,
        )
        for row, detector in session.execute(stmt)
    ]
