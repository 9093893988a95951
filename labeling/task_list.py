"""The labeling queue as a list a person or a script works through without Label Studio.

``GET /v1/labeling/tasks`` and ``shiftwatch labeling tasks`` show each queued sample with what
identifies it for ``shiftwatch labeling import`` (prediction id, request id, input reference), why it
was picked, what the model said, and a signed link to its image; highest priority first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion, Prediction
from shiftwatch.errors import Invalid
from shiftwatch.labeling.input_links import InputLinks
from shiftwatch.labeling.tables import TASK_STATES, LabelTask


@dataclass(frozen=True, slots=True)
class QueuedTask:
    """One queued sample, as the list shows it."""

    task_id: int
    prediction_id: uuid.UUID
    request_id: str | None  # None once retention dropped the prediction (the task keeps the rest)
    input_ref: str | None
    image_url: str | None  # a signed link, valid for the labeling link lifetime
    version: str
    route: str | None
    reason: str
    priority: float
    predicted_class: int
    predicted_label: str
    confidence: float
    state: str
    ts: datetime


def list_tasks(
    session: Session, links: InputLinks | None, model: str, state: str | None = "pending", limit: int = 100
) -> list[QueuedTask]:
    """The model's tasks in ``state`` (None: every state), highest priority first, then oldest first."""
    if state is not None and state not in TASK_STATES:
        raise Invalid("state", f"must be one of {', '.join(TASK_STATES)}")
    found = registry.get_model(session, model)
    stmt = (
        select(LabelTask, ModelVersion.version, Prediction.request_id, Prediction.route)
        .join(ModelVersion, ModelVersion.id == LabelTask.model_version_id)
        .outerjoin(Prediction, (Prediction.id == LabelTask.prediction_id) & (Prediction.ts == LabelTask.ts))
        .where(ModelVersion.model_id == found.id)
        .order_by(LabelTask.priority.desc(), LabelTask.ts, LabelTask.id)
        .limit(limit)
    )
    if state is not None:
        stmt = stmt.where(LabelTask.state == state)
    names = list(found.class_names)
    return [
        QueuedTask(
            task_id=task.id, prediction_id=task.prediction_id, request_id=request_id, input_ref=task.input_ref,
            image_url=links.link(task.input_ref) if links is not None and task.input_ref else None,
            version=version, route=route, reason=task.reason, priority=task.priority,
            predicted_class=task.predicted_class,
            predicted_label=names[task.predicted_class] if 0 <= task.predicted_class < len(names) else str(task.predicted_class),
            confidence=task.confidence, state=task.state, ts=task.ts,
        )
        for task, version, request_id, route in session.execute(stmt).tuples()
    ]
