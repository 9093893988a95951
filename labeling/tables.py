"""ORM tables owned by labeling: the queue of samples to label, and the labels people gave them.

Neither table points into ``predictions`` (it is partitioned and retention drops whole days):
a queued task copies what labeling and retraining need (input reference, embedding,
probabilities), so a label outlives the prediction it was given to.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from shiftwatch.db import Base, Float32Vector, UtcDateTime, utcnow

# Why a sample is in the queue; also the order of precedence when two sources pick the same one.
# ``imported``: nobody queued it; a label arrived for it through ``labeling import`` or POST /v1/labels.
# ``weighted``: drawn for an alert's accuracy with a known probability (labeling.alert_audit), not uniformly.
REASONS = ("disagreement", "flagged", "uncertain", "random", "imported", "weighted")
# The reasons whose rows were drawn uniformly from the traffic (the audit slice): only labels on
# these estimate an accuracy without bias; the others were picked because they looked hard, and
# ``imported`` ones because someone chose to label them. ``audit`` is the name Label Studio and
# exports show for ``random``; a task stored under it counts the same.
UNIFORM_REASONS = ("random", "audit")
# pending: not in Label Studio yet (or its push failed); sent: a task there; labeled: a label is stored;
# skipped: a person skipped it or deleted its task (never pushed again).
TASK_STATES = ("pending", "sent", "labeled", "skipped")
# Where a label came from: Label Studio's webhook, the periodic pull, the built-in oracle, or an import.
LABEL_SOURCES = ("webhook", "pull", "oracle", "import")
# Labels Label Studio did not give, so nothing Label Studio does (a deleted task or annotation) removes them.
OUTSIDE_STUDIO = ("oracle", "import")


class LabelTask(Base):
    """One prediction queued for a person: why, how urgent, and where it stands in Label Studio."""

    __tablename__ = "label_tasks"
    __table_args__ = (Index("ix_label_tasks_version_state_priority", "model_version_id", "state", "priority"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Unique: a prediction is queued at most once, whatever selected it.
    prediction_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    input_ref: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # Copied from the prediction.
    embedding: Mapped[np.ndarray | None] = mapped_column(Float32Vector, nullable=True)
    probabilities: Mapped[np.ndarray | None] = mapped_column(Float32Vector, nullable=True)
    predicted_class: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(20))
    priority: Mapped[float] = mapped_column(Float)
    # What the selector saw (margin, detector score, the shadow's class, ...), for people reading the queue.
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    studio_project_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    studio_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # Backoff: a failed push is not retried before this time.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Label(Base):
    """The class a person (or the oracle) gave one queued prediction; an updated annotation overwrites it."""

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_version_labeled_at", "model_version_id", "labeled_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("label_tasks.id", ondelete="CASCADE"), unique=True)
    prediction_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    label: Mapped[int] = mapped_column(Integer)
    annotator: Mapped[str] = mapped_column(String(320))
    labeled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(20))
    studio_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    studio_annotation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    # Superseded (``labeling retire``): given under a label definition that has since changed. Kept for
    # audit, left out of training and of every accuracy; a new label for the sample clears it.
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    retired_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
