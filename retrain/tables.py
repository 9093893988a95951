"""ORM tables owned by retrain: one row per training run, one per content-addressed artifact file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shiftwatch.db import Base, UtcDateTime, utcnow

RUN_STATES = ("running", "succeeded", "rejected", "failed")


class TrainingRun(Base):
    """A retraining run: what data it saw, how it trained, what it measured and what it produced.

    ``status``: running, then succeeded (candidate registered), rejected (the evaluation gate
    said no; nothing registered) or failed (an error; ``error`` says which).
    """

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    base_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    candidate_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(20), default="running")
    seed: Mapped[int] = mapped_column(Integer)
    # sha256 of the sorted labeled prediction ids (+ their labels): same snapshot, same hash.
    labeled_snapshot_sha256: Mapped[str] = mapped_column(String(64), index=True)
    # Reference split, labeled counts, time bounds: enough to rebuild the training set.
    data_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    compress_steps: Mapped[list[str]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    weights_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class Artifact(Base):
    """A file under ``data_dir/artifacts`` named by its sha256 (ONNX model or torch weights)."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # onnx | weights | reference
    path: Mapped[str] = mapped_column(String(1000))  # relative to data_dir
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
