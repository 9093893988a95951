"""ORM tables owned by rollout: rollouts, their comparisons, serving errors and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shiftwatch.db import Base, UtcDateTime, utcnow
from shiftwatch.rollout.states import ACTIVE_STATES, ROLLOUT_STATES  # noqa: F401 - where the rest of rollout finds them


class Rollout(Base):
    """One candidate version's way to production; all controller state lives here, so a restart resumes it."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_model_id_state", "model_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    candidate_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    # The production version the candidate is compared with (fixed when the rollout starts).
    baseline_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20), default="candidate")
    # Index into plan["canary_steps"]; meaningful in the canary state only.
    step: Mapped[int] = mapped_column(Integer, default=0)
    # When the current stage began (the accuracy test pools the whole canary) and when the current
    # canary step began (latency, errors and confidence are judged per step).
    stage_started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    step_started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The controller's last verdict ({"decision": ..., "reasons": [...], "evidence_sufficient": ...}).
    last_decision: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Comparison(Base):
    """Candidate vs production metrics at one controller tick (the table shown to the approver)."""

    __tablename__ = "comparisons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    step: Mapped[int] = mapped_column(Integer, default=0)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    decision: Mapped[str] = mapped_column(String(20))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ServingError(Base):
    """A prediction the gateway failed to make: the denominator of the error-rate guardrail."""

    __tablename__ = "serving_errors"
    __table_args__ = (Index("ix_serving_errors_version_ts", "model_version_id", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign key: errors are kept even after a version's rows are cleaned up.
    model_version_id: Mapped[int] = mapped_column(Integer)
    route: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str] = mapped_column(String(2000))
    ts: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AuditLog(Base):
    """Every rollout transition: who or what made it, why, and the evidence at that moment. Never deleted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id", ondelete="SET NULL"), nullable=True, index=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str] = mapped_column(String(2000), default="")
    forced: Mapped[bool] = mapped_column(default=False)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CanaryKeyCount(Base):
    """What one gateway process has seen of a canary's client keys: how many, and how many it serves the candidate.

    Written by each gateway (``replica``: host and process) as keys arrive; the controller reads it to
    say why a step gets no traffic (too few keys for a sticky share), which it cannot see in predictions.
    """

    __tablename__ = "canary_key_counts"

    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True)
    replica: Mapped[str] = mapped_column(String(200), primary_key=True)
    share: Mapped[float] = mapped_column(Float)
    keys_seen: Mapped[int] = mapped_column(Integer)
    keys_in_canary: Mapped[int] = mapped_column(Integer)
    keys_hashed_in: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
