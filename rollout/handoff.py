"""Thin adapters to the packages below rollout: labels for the accuracy test, the labeling queue for disagreements."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.labeling.policy import Budget, QueueItem, enqueue
from shiftwatch.labeling.tables import Label, LabelTask
from shiftwatch.settings import Settings

# Bound parameters per IN query (SQLite allows 32,766; PostgreSQL far more).
IN_CHUNK = 5000


def known_labels(session: Session, input_refs: list[str]) -> dict[str, int]:
    """True classes of inputs labeled from labeling's uniformly random slice.

    Only the random slice: tasks picked because they looked hard (uncertain, flagged,
    disagreeing) would bias an accuracy estimate, and the SPRT assumes unbiased samples.
    Inputs are content-addressed, so a label applies to every version that saw the input.
    """
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(input_refs))
    for start in range(0, len(unique), IN_CHUNK):
        rows = session.execute(
            select(LabelTask.input_ref, Label.label)
            .join(Label, Label.task_id == LabelTask.id)
            .where(LabelTask.input_ref.in_(unique[start : start + IN_CHUNK]), LabelTask.reason == "random")
            .order_by(Label.labeled_at)
        )
        found.update({ref: int(label) for ref, label in rows if ref is not None})  # the newest label wins
    return found


def send_disagreements(
    session: Session, model_version_id: int, items: list[dict[str, Any]], settings: Settings | None = None
) -> int:
    """Queue the candidate's side of disagreeing shadow pairs for labeling; returns how many were queued.

    With ``settings`` they count against the model's daily labeling budget like every other source.
    """
    daily = None
    if settings is not None:
        model = session.scalar(select(Model.name).join(ModelVersion, ModelVersion.model_id == Model.id)
                               .where(ModelVersion.id == model_version_id))
        daily = None if model is None else Budget.of(settings, model).daily
    result = enqueue(
        session,
        model_version_id,
        [QueueItem(uuid.UUID(item["prediction_id"]), score=1.0, evidence=item) for item in items],
        "disagreement",
        daily_budget=daily,
    )
    return result.queued
