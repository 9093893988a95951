"""Pydantic shapes of the labeling API (JSON in and out); built from the frozen results of the services."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


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


class SelectionOut(BaseModel):
    model: str
    considered: int
    queued: int
    by_reason: dict[str, int]
    budget_left: int


class PushOut(BaseModel):
    model: str
    sent: int
    failed: int
    pending: int
    project_id: int | None
    error: str | None
    closed: int
