"""Thin adapters to the packages below rollout: labels for the accuracy test, the labeling queue for disagreements,
and monitoring handed to a promoted version."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.detectors import succession
from shiftwatch.detectors.alerts import Outbox
from shiftwatch.labeling.policy import Budget, QueueItem, enqueue
from shiftwatch.labeling.tables import UNIFORM_REASONS, Label, LabelTask
from shiftwatch.rollout.tables import Rollout
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
            .where(LabelTask.input_ref.in_(unique[start : start + IN_CHUNK]), LabelTask.reason.in_(UNIFORM_REASONS),
                   Label.retired_at.is_(None))
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


def rollout_url(public_url: str, rollout_id: int) -> str:
    """The console's rollout page: the promotion's evidence and audit log."""
    return f"{public_url.rstrip('/')}/console/rollouts/{rollout_id}"


def hand_over_monitoring(session: Session, rollout: Rollout, outbox: Outbox, now: datetime) -> succession.Handover:
    """The promoted candidate takes over its predecessor's detectors; the predecessor's alerts close, linked to this rollout."""
    retired = session.get(ModelVersion, rollout.baseline_version_id)
    promoted = session.get(ModelVersion, rollout.candidate_version_id)
    model = session.get(Model, rollout.model_id)
    assert retired is not None and promoted is not None and model is not None  # foreign keys
    resolution = (
        f"{model.name}:{retired.version} was retired when rollout {rollout.id} promoted {model.name}:{promoted.version}; "
        f"its detectors watch {promoted.version} now: {rollout_url(outbox.public_url, rollout.id)}"
    )
    return succession.hand_over(
        session, outbox, retired_id=retired.id, promoted_id=promoted.id, window_start=rollout.created_at,
        window_end=now, resolved_by=f"rollout {rollout.id}", resolution=resolution, now=now,
    )  # fmt: skip
