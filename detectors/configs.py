"""Detector configs: which detector watches which model version, over which window, how often, how strictly."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import ModelVersion
from shiftwatch.detectors import DETECTORS
from shiftwatch.detectors.base import Detector
from shiftwatch.detectors.tables import DetectorConfig
from shiftwatch.errors import Conflict, Invalid, NotFound

INPUTS = ("embeddings", "probabilities", "confidence")
# Detectors that test correctness flags: they run from the CLI or code, not from scheduled windows.
UNSCHEDULABLE = ("labeled_accuracy",)
EDITABLE = (
    "params",
    "window_last_n",
    "window_minutes",
    "schedule_seconds",
    "alpha",
    "min_effect",
    "confirm_runs",
    "enabled",
)


@dataclass(frozen=True, slots=True)
class ConfigSpec:
    """A detector config's values, read in one session and used in the next: no ORM row outlives its session."""

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

    @classmethod
    def of(cls, row: DetectorConfig) -> ConfigSpec:
        values = {f.name: getattr(row, f.name) for f in fields(cls)}
        return cls(**values | {"params": dict(row.params)})


def detector_class(name: str, registry: Mapping[str, type[Detector]] = DETECTORS) -> type[Detector]:
    """The class registered as ``name``, or ``Invalid`` listing the known names."""
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none registered"
        raise Invalid("detector", f"unknown detector {name!r} (known: {known})")
    return registry[name]


def fit_key(config: ConfigSpec, reference_fingerprint: str) -> str:
    """What a fitted state depends on: the reference and how the detector is configured."""
    text = json.dumps(
        [reference_fingerprint, config.detector, config.input, config.params], sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _validate(values: dict[str, Any], registry: Mapping[str, type[Detector]]) -> None:
    cls = detector_class(values["detector"], registry)
    if values["input"] not in INPUTS:
        raise Invalid("input", f"must be one of {', '.join(INPUTS)}")
    if (values["window_last_n"] is None) == (values["window_minutes"] is None):
        raise Invalid("window", "give exactly one of window_last_n and window_minutes")
    for name in ("window_last_n", "window_minutes", "schedule_seconds", "confirm_runs"):
        if values[name] is not None and values[name] < 1:
            raise Invalid(name, "must be at least 1")
    if not 0 < values["alpha"] < 1:
        raise Invalid("alpha", "must be between 0 and 1")
    if values["min_effect"] is not None and values["min_effect"] < 0:
        raise Invalid("min_effect", "must not be negative")
    try:
        cls(**values["params"])
    except (TypeError, ValueError) as exc:
        raise Invalid("params", str(exc)) from None


def create(
    session: Session,
    model_version_id: int,
    detector: str,
    *,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    input: str | None = None,  # noqa: A002 - the column and API field of the same name
    window_last_n: int | None = None,
    window_minutes: int | None = None,
    schedule_seconds: int = 300,
    alpha: float = 0.05,
    min_effect: float | None = None,
    confirm_runs: int = 2,
    enabled: bool = True,
    registry: Mapping[str, type[Detector]] = DETECTORS,
) -> DetectorConfig:
    """Add a config; ``input`` defaults to what the detector reads (its ``input_kind``)."""
    if session.get(ModelVersion, model_version_id) is None:
        raise NotFound(f"model version {model_version_id} does not exist")
    cls = detector_class(detector, registry)
    if detector in UNSCHEDULABLE:
        raise Invalid(
            "detector", f"{detector} needs labels joined to predictions, which scheduled runs do not read yet"
        )
    values: dict[str, Any] = {
        "model_version_id": model_version_id,
        "name": name or detector,
        "detector": detector,
        "params": dict(params or {}),
        "input": input or cls.input_kind,
        "window_last_n": window_last_n,
        "window_minutes": window_minutes,
        "schedule_seconds": schedule_seconds,
        "alpha": alpha,
        "min_effect": min_effect,
        "confirm_runs": confirm_runs,
        "enabled": enabled,
    }
    _validate(values, registry)
    taken = select(DetectorConfig.id).where(
        DetectorConfig.model_version_id == model_version_id, DetectorConfig.name == values["name"]
    )
    if session.scalar(taken) is not None:
        raise Conflict(f"model version {model_version_id} already has a detector config named {values['name']!r}")
    row = DetectorConfig(**values)
    session.add(row)
    session.flush()
    return row


def update(
    session: Session, config_id: int, changes: dict[str, Any], registry: Mapping[str, type[Detector]] = DETECTORS
) -> DetectorConfig:
    """Change editable fields; a change of params refits on the next run (the fit key changes)."""
    row = get(session, config_id)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise Invalid(sorted(unknown)[0], "cannot be changed")
    values = {c: getattr(row, c) for c in ("detector", "input", *EDITABLE)} | changes
    if "window_last_n" in changes and changes["window_last_n"] is not None and "window_minutes" not in changes:
        values["window_minutes"] = None
    if "window_minutes" in changes and changes["window_minutes"] is not None and "window_last_n" not in changes:
        values["window_last_n"] = None
    _validate(values, registry)
    for key in EDITABLE:
        setattr(row, key, values[key])
    session.flush()
    return row


def get(session: Session, config_id: int) -> DetectorConfig:
    row = session.get(DetectorConfig, config_id)
    if row is None:
        raise NotFound(f"detector config {config_id} does not exist")
    return row


def find(session: Session, model_version_id: int, name: str, label: str | None = None) -> DetectorConfig:
    """A version's config by name; ``NotFound`` names the version (``label``, e.g. "parts:v1") and its configs."""
    row = session.scalar(
        select(DetectorConfig).where(DetectorConfig.model_version_id == model_version_id, DetectorConfig.name == name)
    )
    if row is None:
        names = [c.name for c in list_configs(session, model_version_id)]
        raise NotFound(f"{label or f'model version {model_version_id}'} has no detector config named {name!r} "
                       f"(it has: {', '.join(names) or 'none'})")  # fmt: skip
    return row


def list_configs(session: Session, model_version_id: int | None = None) -> list[DetectorConfig]:
    stmt = select(DetectorConfig).order_by(DetectorConfig.id)
    if model_version_id is not None:
        stmt = stmt.where(DetectorConfig.model_version_id == model_version_id)
    return list(session.scalars(stmt))
