"""ORM tables owned by the detectors: configs, pinned references, fitted state, runs, alerts, deliveries, flags.

No foreign key points into ``predictions`` (partitioned; retention drops partitions):
flagged samples copy the prediction's id, ts and input_ref instead.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from shiftwatch.db import Base, Float32Vector, UtcDateTime, utcnow

ALERT_STATES = ("open", "acknowledged", "resolved")
SEVERITIES = ("low", "medium", "high")
RUN_STATUSES = ("ok", "skipped", "failed")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class DetectorConfig(Base):
    """One detector watching one model version: what to run, over which window, how often, how strict."""

    __tablename__ = "detector_configs"
    __table_args__ = (UniqueConstraint("model_version_id", "name", name="uq_detector_configs_model_version_id_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    # A label unique per model version (defaults to the detector name), so two MMDs with other params can coexist.
    name: Mapped[str] = mapped_column(String(100))
    detector: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Which array the detector sees: "embeddings", "probabilities" or "confidence", or "correctness"
    # (the 0/1 correctness of the window's uniformly labeled predictions: labeled detectors).
    input: Mapped[str] = mapped_column(String(20), default="embeddings")
    # The current window: the last N predictions, or the last T minutes (exactly one is set).
    window_last_n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    window_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schedule_seconds: Mapped[int] = mapped_column(Integer, default=300)
    alpha: Mapped[float] = mapped_column(Float, default=0.05)
    # Practical threshold on the result's effect size (in its effect_unit): smaller shifts never page.
    # None: the detector's own ``min_effect_size`` (calibrated per method), else 0.
    min_effect: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Consecutive flagged runs needed before an alert opens (the across-runs half of multiple testing).
    confirm_runs: Mapped[int] = mapped_column(Integer, default=2)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The last tick that found nothing new to test ("no new data since run 17"): no run is written for it.
    checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    check_note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ReferenceWindow(Base):
    """The reference a model version is compared against, pinned: arrays stored as float32 bytes."""

    __tablename__ = "reference_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # "time_range", "upload" or "rollout" (a promotion's window)
    start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    n: Mapped[int] = mapped_column(Integer)
    embedding_dim: Mapped[int | None] = mapped_column(Integer, nullable=True)
    num_classes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Each array flattened (embeddings and probabilities are n rows of embedding_dim / num_classes).
    embeddings: Mapped[np.ndarray | None] = mapped_column(Float32Vector, nullable=True)
    probabilities: Mapped[np.ndarray | None] = mapped_column(Float32Vector, nullable=True)
    confidence: Mapped[np.ndarray] = mapped_column(Float32Vector)
    predicted_class: Mapped[np.ndarray] = mapped_column(Float32Vector)
    labels: Mapped[np.ndarray | None] = mapped_column(Float32Vector, nullable=True)
    # Where and when each sample was taken (int64 microseconds since the epoch): detectors permute
    # blocks of consecutive frames of one camera, so the reference needs them as much as the current window.
    stream_ids: Mapped[list[str | None] | None] = mapped_column(JSON, nullable=True)
    timestamps: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # sha256 of all arrays: fitted detector state is tied to it and refit only when it changes.
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DetectorState(Base):
    """A detector's fitted state (npz bytes, never pickle), valid for one reference and one set of params."""

    __tablename__ = "detector_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("detector_configs.id", ondelete="CASCADE"), unique=True)
    # sha256 of (reference fingerprint, detector, params, input): a mismatch means refit.
    fit_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[bytes] = mapped_column(LargeBinary)
    fitted_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DriftRun(Base):
    """One scheduled test of one config at one tick; written in one transaction with its alert changes."""

    __tablename__ = "drift_runs"
    __table_args__ = (
        UniqueConstraint("config_id", "tick", name="uq_drift_runs_config_id_tick"),
        Index("ix_drift_runs_version_tick", "model_version_id", "tick"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("detector_configs.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    detector: Mapped[str] = mapped_column(String(100))
    tick: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(20))  # "ok", "skipped" or "failed" (why in ``note``)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    statistic: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Holm-adjusted across the detectors of this model version at this tick.
    adjusted_p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    detector_drift: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # the detector's own verdict
    decision: Mapped[bool] = mapped_column(Boolean, default=False)  # significant after Holm AND large enough
    effect_size: Mapped[float | None] = mapped_column(Float, nullable=True)
    effect_unit: Mapped[str | None] = mapped_column(String(100), nullable=True)
    estimated_harm: Mapped[float | None] = mapped_column(Float, nullable=True)  # accuracy points lost
    window_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    n_reference: Mapped[int] = mapped_column(Integer, default=0)
    n_current: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    # What was tested: the newest ``received_at`` among the version's predictions at read time, and
    # the key of the reference and config it ran under. A later tick with neither is a no-op.
    data_watermark: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    test_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    # Significance and severity live in the evidence's "verdict" (no schema change); None for older runs.
    @property
    def significant(self) -> bool | None:
        return (self.evidence or {}).get("verdict", {}).get("significant")

    @property
    def severity(self) -> str | None:
        return (self.evidence or {}).get("verdict", {}).get("severity")


class Alert(Base):
    """A drift alert people act on; one open alert per config at a time (``open_key`` is unique, NULL once resolved)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_state_updated", "state", "updated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("detector_configs.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    # = config_id while open or acknowledged, NULL when resolved: NULLs never collide, so the
    # unique constraint is "one unresolved alert per config" on both backends without a partial index.
    open_key: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    detector: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), default="open")
    severity: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(500))
    first_run_id: Mapped[int] = mapped_column(ForeignKey("drift_runs.id", ondelete="CASCADE"))
    last_run_id: Mapped[int] = mapped_column(ForeignKey("drift_runs.id", ondelete="CASCADE"))
    run_count: Mapped[int] = mapped_column(Integer, default=1)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    effect_size: Mapped[float] = mapped_column(Float)
    effect_unit: Mapped[str] = mapped_column(String(100))
    estimated_harm: Mapped[float | None] = mapped_column(Float, nullable=True)
    harm_source: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Relative to DATA_DIR ("reports/drift-3-....html"), so a moved or restored data directory keeps its reports.
    report_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # {"shifted_dimensions": [...], "atypical_samples": [...], "detector": {...}}
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Why it was resolved, when something other than a person's click did it (a promotion, with its link).
    resolution: Mapped[str | None] = mapped_column(String(500), nullable=True)


class WebhookDelivery(Base):
    """One alert event to one endpoint (an outbox row, written with the alert change; sent by a background job)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    format: Mapped[str] = mapped_column(String(10))  # "json" or "slack"
    event: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # A sender leases the row while it posts, so two replicas never send the same delivery at once.
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class FlaggedSample(Base):
    """A prediction a drift run found most unlike the reference: what the labeling queue picks up."""

    __tablename__ = "flagged_samples"
    __table_args__ = (
        UniqueConstraint("drift_run_id", "prediction_id", name="uq_flagged_samples_drift_run_id_prediction_id"),
        Index("ix_flagged_samples_version_created", "model_version_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    ts: Mapped[datetime] = mapped_column(UtcDateTime)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    input_ref: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(500))
    drift_run_id: Mapped[int] = mapped_column(ForeignKey("drift_runs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DetectorClaim(Base):
    """Which worker runs a model version's due configs at which tick: the unit N detector workers split a tick by.

    One row per version (not per config): Holm adjusts across a version's detectors and their runs
    are written in one transaction, so a version's due configs are claimed together. A claim whose
    ``heartbeat_at`` is older than the lease, unfinished, belongs to a dead worker and may be taken.
    """

    __tablename__ = "detector_claims"

    model_version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tick: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Set in the transaction that writes the version's runs (or when the version failed): this tick is done.
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
