"""Pydantic shapes of the collector's API (JSON in and out)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shiftwatch_client.records import (
    MAX_CLASS_INDEX,
    MAX_LENGTHS,
    MAX_VECTOR,
    PredictionRecord,
    grouped_columns,
    text_problem,
)
from shiftwatch_client.wire import ColumnBatch


class ModelIn(BaseModel):
    """A model to register; registering it again with the same class names is a no-op."""

    name: str = Field(min_length=1, max_length=200, description="letters, digits, '-', '_' and '.'; e.g. digits")
    class_names: list[str] = Field(
        min_length=2, max_length=MAX_VECTOR, description="the classes in output order: predicted_class i means class_names[i]"
    )
    description: str = Field("", description="free text for people")


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    class_names: list[str] = Field(description="the classes in output order")
    description: str
    created_at: datetime


class VersionIn(BaseModel):
    """A version of a registered model; the same version with the same artifact again is a no-op."""

    version: str = Field(min_length=1, max_length=100, description="any label, e.g. v3 or 2026-11-30")
    embedding_dim: int = Field(gt=0, le=MAX_VECTOR, description="length of the embedding vector every prediction carries")
    artifact_path: str | None = Field(
        None, description="an ONNX file under DATA_DIR/artifacts (upload one with POST /v1/artifacts); only the gateway needs it"
    )
    artifact_sha256: str | None = Field(
        None, min_length=64, max_length=64, description="the artifact's sha256 in hex, checked when given"
    )
    input_spec: dict[str, Any] = Field(
        default_factory=dict, description="how the gateway prepares images for the artifact (size, mean, std)"
    )
    # Registering creates a candidate; production is reached through a rollout (or, for a model's
    # first version, POST .../versions/{version}/bootstrap with the approve scope). docs/rollout.md.
    state: str = Field(
        "candidate",
        description="always candidate: promote through a rollout, or bootstrap a model's first version",
    )

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
    state: str = Field(description="candidate, shadow, canary, production or retired")
    embedding_dim: int
    artifact_path: str | None
    artifact_sha256: str | None
    input_spec: dict[str, Any]
    report: dict[str, Any] = Field(description="the retraining and compression report, for versions shiftwatch made")
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

    id: uuid.UUID = Field(description="the client's idempotency key: a re-sent id is stored once (same ts too)")
    model: StoredText = Field(min_length=1, max_length=MAX_LENGTHS["model"], description="a registered model name")
    version: StoredText = Field(
        min_length=1, max_length=MAX_LENGTHS["version"], description="a registered version of that model"
    )
    ts: AwareDatetime = Field(description="when the prediction was made, with a timezone (ISO 8601)")
    route: Literal["production", "canary", "shadow"] = Field(
        "production", description="which path served it; the detectors watch production"
    )
    request_id: StoredText | None = Field(
        None, max_length=MAX_LENGTHS["request_id"], description="pairs shadow and production answers to one request"
    )
    stream_id: StoredText | None = Field(
        None, max_length=MAX_LENGTHS["stream_id"], description="camera or source id; correlated frames share one"
    )
    # the column is int4; larger would overflow, not validate
    predicted_class: int = Field(ge=0, le=MAX_CLASS_INDEX, description="index into the model's class_names")
    confidence: float = Field(ge=0, le=1, description="the model's score for predicted_class, 0..1")
    probabilities: list[float] | None = Field(
        None, max_length=MAX_VECTOR, description="class probabilities, one per class name (BBSD and the accuracy estimators use them)"
    )
    embedding: list[float] | None = Field(
        None, max_length=MAX_VECTOR, description="the model's embedding, embedding_dim values (MMD, LSDD and KS-PCA use it)"
    )
    input_ref: StoredText | None = Field(
        None, max_length=MAX_LENGTHS["input_ref"], description="where the input image is kept, for labeling"
    )
    latency_ms: float | None = Field(None, ge=0, description="the model's serving time for this request")


class PredictionBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictions: list[PredictionIn] = Field(min_length=1, description="up to MAX_BATCH_ROWS predictions")

    def to_chunks(self) -> list[tuple[ColumnBatch, np.ndarray]]:
        """Group rows into rectangular column batches (same version, same optional fields), keeping positions."""
        return chunks_of(self.predictions, np.arange(len(self.predictions)))


def chunks_of(rows: list[PredictionIn], positions: np.ndarray) -> list[tuple[ColumnBatch, np.ndarray]]:
    """Rows as rectangular column batches, each with its rows' ``positions`` in the request."""
    with np.errstate(over="ignore"):  # 1e300 becomes inf here, and the row checks refuse it by name
        records = [
            PredictionRecord(
                **p.model_dump(exclude={"embedding", "probabilities"}),
                embedding=None if p.embedding is None else np.asarray(p.embedding, dtype=np.float32),
                probabilities=None if p.probabilities is None else np.asarray(p.probabilities, dtype=np.float32),
            )
            for p in rows
        ]
    return [(chunk, positions[index]) for chunk, index in grouped_columns(records)]


class RowRefusal(BaseModel):
    index: int = Field(description="the row's position in the batch (0-based)")
    field: str = Field(description="the field at fault, e.g. predictions[3].ts")
    reason: str
    status: int = Field(description="the status the row alone would have had: 422 invalid, 404 unregistered, 409 moved id")


class IngestOut(BaseModel):
    received: int = Field(description="rows in the batch")
    stored: int = Field(description="rows written now")
    duplicates: int = Field(description="rows whose id was already stored (a re-send): kept once, not an error")
    refused: int = Field(0, description="rows refused one by one (only with ?partial=true); see refusals")
    queued: int = Field(0, description="rows handed to the ingest broker (HTTP 202, SHIFTWATCH_INGEST_BROKER_URL): "
                        "an ingest worker stores them; rows it refuses go to `shiftwatch ingest dead-letters`")
    refusals: list[RowRefusal] = Field(default_factory=list, description="each refused row and why")


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


def ingest_request_body() -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of ``POST /v1/predictions``, which reads its body itself (JSON or
    ``.npz``): without it the schema would show no fields for the one route every client calls."""
    schema = PredictionBatchIn.model_json_schema()
    schema["properties"]["predictions"]["items"] = schema.pop("$defs")["PredictionIn"]  # inline: no components
    return {
        "required": True,
        "content": {
            "application/json": {"schema": schema},
            "application/x-shiftwatch-npz": {
                "schema": {"type": "string", "format": "binary",
                           "description": "the same rows as numpy columns (client/shiftwatch_client/wire.py); what the SDK sends"}
            },
        },
    }  # fmt: skip
