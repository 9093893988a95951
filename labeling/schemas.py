"""Pydantic shapes of the labeling API (JSON in and out); built from the frozen results of the services."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WebhookIn(BaseModel):
    """A Label Studio webhook event; only the fields we use are named, the rest pass through."""

    model_config = ConfigDict(extra="allow")

    action: str
    task: dict[str, Any] | None = None
    annotation: dict[str, Any] | None = None
    annotations: list[dict[str, Any]] | None = None
    tasks: list[dict[str, Any]] | None = None
    project: dict[str, Any] | None = None


class SyncOut(BaseModel):
    labeled: int
    updated: int
    unchanged: int
    skipped: int
    deleted: int
    unknown: int


class QueueStatusOut(BaseModel):
    model: str
    by_state: dict[str, int]
    by_reason: dict[str, int]
    labels: int
    budget_today: int
    queued_today: int
    retrying: int
    last_error: str | None
    oldest_pending: datetime | None
    retired_labels: int = 0


class SelectionOut(BaseModel):
    model: str
    considered: int
    queued: int
    by_reason: dict[str, int]
    budget_left: int


class AlertAuditIn(BaseModel):
    alert_id: int = Field(..., ge=1, description="the alert whose window to draw from")
    labels: int | None = Field(None, ge=1, le=100_000, description="how many to draw (default: what the alert's harm asks for)")
    design: Literal["auto", "weighted", "uniform"] = Field(
        "auto", description="weighted where the alert's label-free estimate is reliable (auto), or say which")


class AlertAuditOut(BaseModel):
    alert_id: int
    model_version_id: int
    design: str
    window: int = Field(..., description="predictions in the alert's window with a stored input")
    asked: int
    drawn: int
    queued: int = Field(..., description="new tasks")
    joined: int = Field(..., description="drawn rows queued before for another reason, now part of the draw")
    in_slice: int
    budget_left: int
    note: str


class PushOut(BaseModel):
    model: str
    sent: int
    failed: int
    pending: int
    project_id: int | None
    error: str | None
    closed: int


class QueuedTaskOut(BaseModel):
    """A queued sample: what identifies it for an import, why it was picked, what the model said, its image."""

    task_id: int
    prediction_id: uuid.UUID
    request_id: str | None = Field(description="the client's request id; null once retention dropped the prediction")
    input_ref: str | None
    image_url: str | None = Field(description="a signed link to the image (no token needed), valid for the link lifetime")
    version: str
    route: str | None = Field(description="production, shadow or canary; null once retention dropped the prediction")
    reason: str
    priority: float
    predicted_class: int
    predicted_label: str
    confidence: float
    state: str
    ts: datetime


class LabelRowIn(BaseModel):
    """One label: exactly one of prediction_id, request_id, input_ref; the class by name or index."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str | None = Field(None, max_length=64)
    request_id: str | None = Field(None, max_length=200)
    input_ref: str | None = Field(None, max_length=2000)
    label: str | int | None = Field(None, description="class name, or class index")
    annotator: str | None = Field(None, max_length=320, description="who labeled (default: the token's name)")


class LabelsIn(BaseModel):
    """Labels given outside Label Studio; all are stored or none (each bad row is listed in the 422)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=200)
    labels: list[LabelRowIn] = Field(min_length=1, max_length=10_000)


class ImportOut(BaseModel):
    model: str
    rows: int
    labeled: int
    updated: int
    unchanged: int
    new_tasks: int
    audit: int


class RetireIn(BaseModel):
    """Retire labels given under a label definition that has since changed (kept for audit, out of training and accuracy)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=200)
    before: datetime = Field(description="labels given (labeled_at) before this time are retired; needs a time zone")
    label_class: str | int | None = Field(None, alias="class", description="only labels of this class (name or index)")
    reason: str = Field("", max_length=500, description="why, kept with each retired label")


class RetireOut(BaseModel):
    model: str
    before: datetime
    label_class: str | None = Field(serialization_alias="class")
    retired: int
    retired_total: int
    active: int
