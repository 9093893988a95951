"""Reading labels back: the training set for retraining, and labeled outcomes for concept-drift accuracy."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.labeling.tables import UNIFORM_REASONS, Label, LabelTask

DRAWS_KEY = "alert_draws"  # a task's evidence: {alert id: {"p": inclusion probability, "drawn": rows drawn, "run": its run}}


def is_uniform(reasons: np.ndarray) -> np.ndarray:
    """Per row, whether its queue reason drew it uniformly (``UNIFORM_REASONS``): the rows an unbiased rate may use."""
    return np.isin(np.asarray(reasons, dtype=np.str_), UNIFORM_REASONS)


@dataclass(frozen=True, slots=True)
class LabeledSample:
    """One labeled prediction with what retraining needs (copied at queue time: it outlives the prediction)."""

    prediction_id: uuid.UUID
    ts: datetime
    model_version_id: int
    input_ref: str | None
    embedding: np.ndarray | None  # float32 (d,)
    predicted_class: int
    label: int
    annotator: str
    labeled_at: datetime


def labeled_samples(session: Session, model_name: str, since: datetime | None = None) -> list[LabeledSample]:
    """All labeled samples of every version of ``model_name`` labeled at or after ``since``, oldest label first
    (retired labels, given under a superseded definition, are left out)."""
    model = registry.get_model(session, model_name)
    stmt = (
        select(Label, LabelTask)
        .join(LabelTask, LabelTask.id == Label.task_id)
        .join(ModelVersion, ModelVersion.id == Label.model_version_id)
        .where(ModelVersion.model_id == model.id, Label.retired_at.is_(None))
    )
    if since is not None:
        stmt = stmt.where(Label.labeled_at >= since)
    rows = session.execute(stmt.order_by(Label.labeled_at, Label.id)).tuples()
    return [
        LabeledSample(
            prediction_id=task.prediction_id,
            ts=task.ts,
            model_version_id=task.model_version_id,
            input_ref=task.input_ref,
            embedding=task.embedding,
            predicted_class=task.predicted_class,
            label=label.label,
            annotator=label.annotator,
            labeled_at=label.labeled_at,
        )
        for label, task in rows
    ]


@dataclass(frozen=True, slots=True)
class LabeledOutcomes:
    """Predictions of one version joined with their labels, as arrays, by prediction time.

    ``reason`` tells which rows were picked uniformly at random (``is_uniform``): accuracy over
    those alone is an unbiased estimate; the other rows were chosen because they looked hard.
    """

    prediction_ids: list[uuid.UUID]
    ts: np.ndarray  # datetime64[us], UTC
    predicted_class: np.ndarray
    confidence: np.ndarray
    label: np.ndarray
    reason: np.ndarray  # str

    def __len__(self) -> int:
        return len(self.prediction_ids)

    def random_slice(self, start: datetime, end: datetime) -> LabeledOutcomes:
        """The uniformly drawn rows of a tested window [start, end] (both ends in, as runs record them)."""
        bounds = [np.datetime64(t.replace(tzinfo=None), "us") for t in (start, end)]
        mask = (self.ts >= bounds[0]) & (self.ts <= bounds[1]) & is_uniform(self.reason)
        return LabeledOutcomes(
            prediction_ids=[pid for pid, keep in zip(self.prediction_ids, mask) if keep],
            ts=self.ts[mask], predicted_class=self.predicted_class[mask], confidence=self.confidence[mask],
            label=self.label[mask], reason=self.reason[mask],
        )

    def hits(self) -> int:
        """How many of these predictions their labels call right."""
        return int(np.sum(self.predicted_class == self.label))

    def accuracy(self, unbiased: bool = True) -> float | None:
        """Share of correct predictions (over the random slice only, when ``unbiased``); None without labels."""
        mask = is_uniform(self.reason) if unbiased else np.ones(len(self), dtype=bool)
        if not mask.any():
            return None
        return float(np.mean(self.predicted_class[mask] == self.label[mask]))


def labeled_outcomes(
    session: Session,
    model_version_id: int,
    start: datetime | None = None,
    end: datetime | None = None,
    reasons: Sequence[str] | None = None,
) -> LabeledOutcomes:
    """Labels of one version's predictions made in [start, end) (by prediction time ``ts``); only ``reasons``' rows if given;
    never retired ones."""
    stmt = select(Label, LabelTask).join(LabelTask, LabelTask.id == Label.task_id)
    stmt = stmt.where(Label.model_version_id == model_version_id, Label.retired_at.is_(None))
    if reasons is not None:
        stmt = stmt.where(LabelTask.reason.in_(reasons))
    if start is not None:
        stmt = stmt.where(LabelTask.ts >= start)
    if end is not None:
        stmt = stmt.where(LabelTask.ts < end)
    rows = list(session.execute(stmt.order_by(LabelTask.ts, LabelTask.id)).tuples())
    return LabeledOutcomes(
        prediction_ids=[task.prediction_id for _, task in rows],
        ts=np.asarray([task.ts.replace(tzinfo=None) for _, task in rows], dtype="datetime64[us]"),
        predicted_class=np.asarray([task.predicted_class for _, task in rows], dtype=np.int64),
        confidence=np.asarray([task.confidence for _, task in rows], dtype=np.float64),
        label=np.asarray([label.label for label, _ in rows], dtype=np.int64),
        reason=np.asarray([task.reason for _, task in rows], dtype=np.str_),
    )


@dataclass(frozen=True, slots=True)
class DrawnLabel:
    """A labeled row of a weighted draw made for one alert: its outcome and the probability it was drawn with."""

    prediction_id: uuid.UUID
    predicted_class: int
    label: int
    inclusion: float
    drawn: int  # rows the draw took (its labels may come in part)


def labeled_draw(session: Session, model_version_id: int, alert_id: int, run_id: int, start: datetime, end: datetime) -> list[DrawnLabel]:
    """The labeled rows of the weighted draw ``alert_audit`` made for ``alert_id`` from run ``run_id``'s window [start, end]
    (retired ones left out): a draw's probabilities hold for the window it was made from, not a later run's."""
    stmt = (
        select(Label, LabelTask)
        .join(LabelTask, LabelTask.id == Label.task_id)
        .where(Label.model_version_id == model_version_id, Label.retired_at.is_(None), LabelTask.ts >= start, LabelTask.ts <= end)
    )
    found = []
    for label, task in session.execute(stmt).tuples():
        draw = ((task.evidence or {}).get(DRAWS_KEY) or {}).get(str(alert_id))
        if draw is not None and draw.get("run") == run_id:
            found.append(DrawnLabel(task.prediction_id, task.predicted_class, label.label, float(draw["p"]), int(draw["drawn"])))
    return found
