"""Pydantic shapes at rollout's edges: the rollout plan (guardrails), API requests and responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shiftwatch.errors import Invalid


class RolloutPlan(BaseModel):
    """How a candidate is judged. Stored with the rollout, so a later change of defaults never rewrites history."""

    model_config = ConfigDict(extra="forbid")

    canary_steps: list[float] = Field(
        default_factory=lambda: [0.05, 0.25, 0.5],
        description="canary traffic shares, increasing, in (0, 1]; sticky by routing key",
    )
    min_shadow_pairs: int = Field(
        200, ge=1, description="shadow pairs (same request id on both versions) before the candidate may take real traffic"
    )
    min_step_predictions: int = Field(200, ge=1, description="candidate predictions per canary step before it may advance")
    min_agreement: float = Field(
        0.8, ge=0, le=1, description="shadow: share of pairs where both versions agree, below which the candidate is rolled back"
    )
    latency_budget_ms: float = Field(
        50.0, gt=0, description="candidate p99 latency (ms, model time incl. the batching queue) above which it is rolled back"
    )
    max_error_rate: float = Field(0.02, ge=0, le=1, description="candidate error rate above which it is rolled back")
    max_confidence_drop: float = Field(
        0.05, ge=0, le=1, description="mean confidence drop (candidate vs production) that, with a significant KS test, is a breach"
    )
    confidence_ks_alpha: float = Field(0.01, gt=0, lt=1, description="significance level of that KS test")
    # bench/canary.py measures 99% kept and 98% rolled back on 100 simulated rollouts each at 0.01 / 0.02.
    accuracy_margin: float = Field(
        0.03, gt=0, lt=1,
        description='accuracy SPRT on the random labeling slice: "worse" means worse by this much (0.03 = 3 points)',
    )
    alpha: float = Field(0.01, gt=0, lt=0.5, description="accuracy SPRT: chance of rolling back an equally accurate candidate")
    beta: float = Field(0.02, gt=0, lt=0.5, description="accuracy SPRT: chance of keeping a candidate that is accuracy_margin worse")
    require_labels: bool = Field(
        True, description="approval needs the accuracy test to have enough labeled samples (or an SPRT verdict)"
    )
    max_window: int = Field(
        20_000, ge=100, description="most recent predictions per route a comparison reads (bounds a tick's memory and time)"
    )

    @field_validator("canary_steps")
    @classmethod
    def _increasing_shares(cls, steps: list[float]) -> list[float]:
        if not steps or any(not 0 < s <= 1 for s in steps) or steps != sorted(steps):
            raise ValueError("must be increasing shares in (0, 1]")
        return steps

def validated_plan(fields: dict[str, Any], field: str = "plan") -> RolloutPlan:
    """A plan from its fields; the first problem as one Invalid naming the plan field (no pydantic dump)."""
    try:
        return RolloutPlan.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise Invalid(field, f"{where}: {error['msg'].removeprefix('Value error, ')}" if where else error["msg"]) from None

class StartRollout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="registered model name")
    version: str = Field(description="the registered candidate version to roll out")
    plan: RolloutPlan = Field(default_factory=RolloutPlan, description="how the candidate is judged; defaults as listed")

class RetryRollout(BaseModel):
    """Roll a rolled-back or rejected rollout's candidate out again; ``plan`` holds only the fields to change."""

    model_config = ConfigDict(extra="forbid")

    plan: dict[str, Any] = Field(
        default_factory=dict, description='plan fields to change from the retried rollout\'s, e.g. {"canary_steps": [0.25, 0.5]}'
    )
    reason: str = Field("", max_length=2000, description="why it is tried again (audit log)")

class Bootstrap(BaseModel):
    """Name a model's first production version; the reason goes in the audit log."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=2000, description="why this version is the first in production (audit log)")

class Decision(BaseModel):
    """Approve or reject. ``force`` overrides insufficient evidence and needs a reason."""

    model_config = ConfigDict(extra="forbid")

    force: bool = Field(False, description="approve although the evidence is insufficient (needs a reason)")
    reason: str = Field(
        "", max_length=2000,
        description="why (audit log); required with force and when approving while the accuracy test is undecided",
    )

class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ts: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    reason: str
    forced: bool
    evidence: dict[str, Any]

class ComparisonOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    stage: str
    step: int
    computed_at: datetime
    decision: str
    metrics: dict[str, Any]

class RolloutOut(BaseModel):
    id: int
    model: str
    candidate_version: str
    baseline_version: str
    state: str
    step: int
    share: float
    plan: dict[str, Any]
    last_decision: dict[str, Any]
    # The state the controller holds, in words ("production: approved by alice at ...: reason").
    standing: str = ""
    created_by: str
    created_at: datetime
    updated_at: datetime
    compression_report: dict[str, Any] = Field(default_factory=dict)
    latest_comparison: ComparisonOut | None = None
    audit: list[AuditOut] = Field(default_factory=list)

class PredictOut(BaseModel):
    model: str
    version: str
    route: str
    request_id: str
    predicted_class: int = Field(serialization_alias="class")
    label: str
    confidence: float
    probabilities: list[float]
