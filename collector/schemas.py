"""Pydantic shapes of the collector's API (JSON in and out)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shiftwatch.collector.records import PredictionRecord, MAX_LENGTHS, grouped_columns, text_problem
from shiftwatch.collector.wire import ColumnBatch


class ModelIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    class_names: list[str] = Field(min_length=2)
    description: str = ""


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    class_names: list[str]
    description: str
    created_at: datetime


class VersionIn(BaseModel):
    version: str = Field(min_length=1, max_length=100)
    embedding_dim: int = Field(gt=0, le=65536)
    artifact_path: str | None = None
    artifact_sha256: str | None = Field(None, min_length=64, max_length=64)
    input_spec: dict[str, Any] = Field(default_factory=dict)
    # Registering creates a candidate; production is reached through a rollout (or, for a model's
    # first version, POST .../versions/{version}/bootstrap with the approve scope). docs/rollout.md.
    state: str = "candidate"

    @field_validator("state")
    @classmethod
    def _only_candidate(cls, value: str) -> str:
        if value != "candidate":
            raise ValueError(
                "registering creates a candidate; promote it through a rollout (POST /v1/rollouts), "
                "or bootstrap a model's first production version (POST .../versions/{version}/bootstrap)"
            )
        return value


class ArtifactOut(BaseModel):
    """An uploaded, verified artifact: register a version with this ``artifact_path``."""

    artifact_path: str
    sha256: str
    size_bytes: int
    opset: int
    inputs: list[str]
    outputs: list[str]


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    version: str
    state: str
    embedding_dim: int
    artifact_path: str | None
    artifact_sha256: str | None
    input_spec: dict[str, Any]
    report: dict[str, Any]
    created_at: datetime


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"the text {problem}")
    return value


# Checked here, before numpy turns the rows into columns: a numpy string drops trailing NULs silently.
StoredText = Annotated[str, AfterValidator(_storable)]


class PredictionIn(BaseModel):
    """One prediction as JSON. ``id`` is the client's idempotency key."""

    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")

    id: uuid.UUID
    model: StoredText = Field(min_length=1, max_length=MAX_LENGTHS["model"])
    version: StoredText = Field(min_length=1, max_length=MAX_LENGTHS["version"])
    ts: AwareDatetime
    route: Literal["production", "canary", "shadow"] = "production"
    request_id: StoredText | None = Field(None, max_length=MAX_LENGTHS["request_id"])
    stream_id: StoredText | None = Field(None, max_length=MAX_LENGTHS["stream_id"])
    predicted_class: int = Field(ge=0, le=2**31 - 1)  # the column is int4; larger would overflow, not validate
    confidence: float = Field(ge=0, le=1)
    probabilities: list[float] | None = None
    embedding: list[float] | None = None
    input_ref: StoredText | None = Field(None, max_length=MAX_LENGTHS["input_ref"])
    latency_ms: float | None = Field(None, ge=0)


class PredictionBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictions: list[PredictionIn] = Field(min_length=1)

    def to_chunks(self) -> list[tuple[ColumnBatch, np.ndarray]]:
        """Group rows into rectangular column batches (same version, same optional fields), keeping positions."""
        records = [
            PredictionRecord(
                **p.model_dump(exclude={"embedding", "probabilities"}),
                embedding=None if p.embedding is None else np.asarray(p.embedding, dtype=np.float32),
                probabilities=None if p.probabilities is None else np.asarray(p.probabilities, dtype=np.float32),
            )
            for p in self.predictions
        ]
        return grouped_columns(records)


class IngestOut(BaseModel):
    received: int
    stored: int
    duplicates: int


class PredictionOut(BaseModel):
    id: uuid.UUID
    ts: datetime
    model: str
    version: str
    route: str
    request_id: str | None
    stream_id: str | None
    predicted_class: int
    confidence: float
    probabilities: list[float] | None = None
    embedding: list[float] | None = None
    input_ref: str | None
    latency_ms: float | None


class PredictionPage(BaseModel):
    items: list[PredictionOut]
    next_cursor: str | None = Field(None, description="pass as ?cursor= to get the next page; null on the last page")
