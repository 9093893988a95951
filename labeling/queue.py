"""The labeling queue in the database: storing picked candidates as tasks, reading them back, and its status.

What enters the queue, in what order and within which budget is ``policy.py``'s job; this
module only stores and counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.db import utcnow
from shiftwatch.errors import Invalid
from shiftwatch.labeling.selection import Candidate
from shiftwatch.labeling.tables import REASONS, TASK_STATES, Label, LabelTask

# Embeddings of already-queued tasks that a new batch keeps its distance from (bounded: k-center is O(n * k)).
EXISTING_CENTERS = 2000
# What the selection policy picks because it looks informative (biased on purpose, unlike the audit slice).
INFORMATIVE = ("flagged", "uncertain")
# Ids per IN query: well under every backend's bound-parameter limit.
IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """What a person asks about the queue: how much is waiting, sent, labeled, and why the last push failed."""

    model: str
    by_state: dict[str, int]
    by_reason: dict[str, int]
    labels: int
    budget_today: int
    queued_today: int
    retrying: int
    last_error: str | None
    oldest_pending: datetime | None
    retired_labels: int = 0  # of ``labels``: superseded by a changed definition (labeling retire), out of training


def check_reason(reason: str) -> None:
    if reason not in REASONS:
        raise Invalid("reason", f"must be one of {', '.join(REASONS)}")


def queued_today(session: Session, model_id: int, now: datetime, reasons: Sequence[str] | None = None) -> int:
    """Tasks of the model (all versions) queued since the start of ``now``'s UTC day: what the daily budget counts.

    Imported labels' tasks are not counted: the budget bounds what we ask of people, and nobody was asked.
    ``reasons`` counts only tasks queued for those reasons.
    """
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    stmt = (
        select(func.count())
        .select_from(LabelTask)
        .join(ModelVersion, ModelVersion.id == LabelTask.model_version_id)
        .where(ModelVersion.model_id == model_id, LabelTask.created_at >= day_start)
        .where(LabelTask.reason != "imported" if reasons is None else LabelTask.reason.in_(reasons))
    )
    return int(session.scalar(stmt) or 0)


def already_queued(session: Session, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these predictions have a task already (a prediction is queued at most once)."""
    found: set[uuid.UUID] = set()
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        found.update(session.scalars(select(LabelTask.prediction_id).where(LabelTask.prediction_id.in_(chunk))))
    return found


def insert_candidates(session: Session, candidates: list[Candidate], now: datetime) -> int:
    """Store picked candidates as pending tasks; ones queued meanwhile (by another process) are skipped."""
    # detectors.evidence loads scikit-learn (over a second): only once a batch is stored, not on import.
    from shiftwatch.detectors.evidence import to_jsonable

    queued = already_queued(session, [c.prediction_id for c in candidates])
    fresh = [c for c in candidates if c.prediction_id not in queued]
    if not fresh:
        return 0
    for candidate in fresh:
        check_reason(candidate.reason)
    session.add_all(
        LabelTask(
            prediction_id=c.prediction_id,
            ts=c.ts,
            model_version_id=c.model_version_id,
            input_ref=c.input_ref,
            embedding=c.embedding,
            probabilities=c.probabilities,
            predicted_class=c.predicted_class,
            confidence=float(c.confidence),
            reason=c.reason,
            priority=float(c.priority),
            evidence=to_jsonable(c.evidence),
            state="pending",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        for c in fresh
    )
    session.flush()
    return len(fresh)


def existing_centers(session: Session, version_id: int) -> np.ndarray | None:
    """Embeddings of the version's newest open tasks, (n, d) float32: what a new batch keeps its distance from."""
    stmt = (
        select(LabelTask.embedding)
        .where(LabelTask.model_version_id == version_id, LabelTask.state.in_(("pending", "sent")))
        .where(LabelTask.embedding.is_not(None))
        .order_by(LabelTask.created_at.desc())
        .limit(EXISTING_CENTERS)
    )
    centers = list(session.scalars(stmt))
    if not centers:
        return None
    return np.stack(centers)


def tasks_of_model(model_name: str) -> Select[LabelTask]:
    """A select() of the model's tasks (all versions), for callers to narrow further."""
    return (
        select(LabelTask)
        .join(ModelVersion, ModelVersion.id == LabelTask.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Model.name == model_name)
    )


def queue_status(session: Session, model_name: str, daily_budget: int, now: datetime | None = None) -> QueueStatus:
    """The model's queue by state and reason, its labels, today's use of ``daily_budget``, and the last push error."""
    now = now or utcnow()
    model = registry.get_model(session, model_name)
    version_ids = select(ModelVersion.id).where(ModelVersion.model_id == model.id)
    in_model = LabelTask.model_version_id.in_(version_ids)
    by_state = dict.fromkeys(TASK_STATES, 0)
    by_state.update(session.execute(select(LabelTask.state, func.count()).where(in_model).group_by(LabelTask.state)).tuples().all())
    by_reason: dict[str, int] = dict(session.execute(select(LabelTask.reason, func.count()).where(in_model).group_by(LabelTask.reason)).tuples().all())
    pending_failed = select(LabelTask).where(in_model, LabelTask.state == "pending", LabelTask.attempts > 0)
    retrying = int(session.scalar(select(func.count()).select_from(pending_failed.subquery())) or 0)
    last_failed = session.scalar(pending_failed.order_by(LabelTask.updated_at.desc()).limit(1))
    oldest = session.scalar(select(func.min(LabelTask.created_at)).where(in_model, LabelTask.state == "pending"))
    labels = int(session.scalar(select(func.count()).select_from(Label).where(Label.model_version_id.in_(version_ids))) or 0)
    retired = int(session.scalar(select(func.count()).select_from(Label).where(
        Label.model_version_id.in_(version_ids), Label.retired_at.is_not(None))) or 0)
    return QueueStatus(
        model=model_name,
        by_state=by_state,
        by_reason=by_reason,
        labels=labels,
        budget_today=daily_budget,
        queued_today=queued_today(session, model.id, now),
        retrying=retrying,
        last_error=None if last_failed is None else last_failed.last_error,
        oldest_pending=oldest,
        retired_labels=retired,
    )
