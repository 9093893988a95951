"""ORM tables owned by the collector: models, their versions, and every logged prediction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from shiftwatch.db import Base, Float32Vector, UtcDateTime, utcnow
from shiftwatch_client.records import ROUTES

__all__ = ["ROUTES", "VERSION_STATES", "Model", "ModelVersion", "Prediction", "PredictionId"]
VERSION_STATES = ("candidate", "shadow", "canary", "production", "rejected", "rolled_back", "retired")


class Model(Base):
    """A named model; its versions come and go, its class names stay."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ModelVersion(Base):
    """One deployable version of a model: its artifact, its input/embedding spec and its rollout state."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), default="candidate")
    artifact_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    embedding_dim: Mapped[int] = mapped_column(Integer)
    # e.g. {"shape": [1, 32, 32], "dtype": "float32", "scale": "0..1"}
    input_spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Whatever produced this version (training metrics, compression report, ...).
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


_KEPT = text("embedding IS NOT NULL")  # rows that kept their embedding (collector.embedding_keep)


class Prediction(Base):
    """One logged prediction. On PostgreSQL the table is range-partitioned by ``ts`` (daily).

    The primary key is (id, ts): a partitioned table's unique keys must include the
    partition column, so ``prediction_ids`` is what makes the id alone unique.
    """

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_version_ts", "model_version_id", "ts"),
        # detectors.freshness: the newest received_at of a version, and "received since", on every tick.
        Index("ix_predictions_version_received_at", "model_version_id", "received_at"),
        Index("ix_predictions_request_id", "request_id"),
        # The embedding detectors' windows: the newest rows that kept their embedding (collector.embedding_keep).
        Index("ix_predictions_version_ts_embedded", "model_version_id", "ts", postgresql_where=_KEPT, sqlite_where=_KEPT),
        {"postgresql_partition_by": "RANGE (ts)"},
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    route: Mapped[str] = mapped_column(String(20), default="production")
    request_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Camera / stream the input came from: consecutive frames of one stream are not independent.
    stream_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    predicted_class: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[np.ndarray | None] = mapped_column(Float32Vector, nullable=True)
    embedding: Mapped[np.ndarray | None] = mapped_column(Float32Vector, nullable=True)
    input_ref: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PredictionId(Base):
    """Every stored prediction id once, with its ts: the idempotency key across all daily partitions.

    Unpartitioned, so its primary key is the id alone; ingest writes it in the same transaction
    as the prediction. A re-send with the same (id, ts) is a duplicate; the same id with another
    ts is refused (409). Retention deletes its rows with their partitions (BRIN index on ts).
    """

    __tablename__ = "prediction_ids"
    __table_args__ = (Index("ix_prediction_ids_ts", "ts", postgresql_using="brin"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
