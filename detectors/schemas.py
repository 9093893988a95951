"""Pydantic shapes at the edges: alerts (API and webhook payloads share one), configs, references, runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class AlertOut(BaseModel):
    """An alert as people and webhooks see it: what moved, how much, how much it likely hurts, where to look."""

    id: int
    model: str
    version: str
    model_version_id: int
    config_id: int
    detector: str
    state: str
    severity: str
    title: str
    p_value: float | None
    effect_size: float
    effect_unit: str
    estimated_harm: float | None = Field(description="estimated accuracy drop in points (positive = worse)")
    harm_source: str | None
    run_count: int
    first_run_id: int
    last_run_id: int
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    url: str = Field(description="this alert in the API (JSON; needs a token when auth is on)")
    report_url: str | None
    console_url: str = Field(description="the console's alert page: what a person opens in a browser")
    console_report_url: str | None = Field(None, description="the Evidently report through the console")
    evidence: dict[str, Any]


class DetectorConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    version: str
    detector: str = "auto"  # the omnibus test (MMD over 5 bandwidths + per-feature KS) on embeddings
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    input: str | None = None
    window_last_n: int | None = None
    window_minutes: int | None = None
    schedule_seconds: int = 300
    alpha: float = 0.05
    # None: drift unless negligible at this window size (detectors/effect.py)
    min_effect: float | None = None
    confirm_runs: int = 2
    enabled: bool = True


class DetectorConfigPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] | None = None
    window_last_n: int | None = None
    window_minutes: int | None = None
    schedule_seconds: int | None = None
    alpha: float | None = None
    min_effect: float | None = None
    confirm_runs: int | None = None
    enabled: bool | None = None


class DetectorConfigOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    model_version_id: int
    name: str
    detector: str
    params: dict[str, Any]
    input: str
    window_last_n: int | None
    window_minutes: int | None
    schedule_seconds: int
    alpha: float
    min_effect: float | None
    confirm_runs: int
    enabled: bool
    checked_at: datetime | None = Field(None, description="the last tick that found no new data (no run written)")
    check_note: str | None = Field(None, description='why that tick tested nothing, e.g. "no new data since run 17"')


class ReferenceRangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime


class ReferenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    model_version_id: int
    source: str
    start: datetime | None
    end: datetime | None
    n: int
    embedding_dim: int | None
    num_classes: int | None
    has_labels: bool
    fingerprint: str
    created_at: datetime


class DriftRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    config_id: int
    model_version_id: int
    detector: str
    tick: datetime
    status: str
    note: str | None
    statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    threshold: float | None
    detector_drift: bool | None
    significant: bool | None = Field(None, description="significant at alpha before Holm (the detector's test)")
    decision: bool = Field(description="drift: significant after Holm AND not negligible (the page decision)")
    severity: str | None = Field(None, description="none | negligible | low | medium | high: the shift's size")
    effect_size: float | None
    effect_unit: str | None
    estimated_harm: float | None
    window_start: datetime | None
    window_end: datetime | None
    n_reference: int
    n_current: int
    duration_ms: float


class QuietCheckOut(BaseModel):
    config_id: int
    name: str
    note: str = Field(description='why nothing was tested, e.g. "no new data since run 17"')


class CheckOut(BaseModel):
    """What an on-demand check did: the runs it wrote, the configs with nothing new, the alerts it touched."""

    model: str
    version: str
    runs: list[DriftRunOut] = Field(description="runs written by this check (none for a config with no new data)")
    quiet: list[QuietCheckOut] = Field(description="configs not tested: no prediction since their last run")
    opened: list[int] = Field(description="ids of alerts this check opened")
    updated: list[int] = Field(description="ids of open alerts this check updated")
