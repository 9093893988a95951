"""Pydantic shapes of training runs at the API edge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class TrainingRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    model_id: int
    base_version_id: int | None
    candidate_version_id: int | None
    status: str
    seed: int
    labeled_snapshot_sha256: str
    data_snapshot: dict[str, Any]
    hyperparameters: dict[str, Any]
    compress_steps: list[str]
    metrics: dict[str, Any]
    artifact_sha256: str | None
    weights_sha256: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
