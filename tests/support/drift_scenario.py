"""Test support for the detectors' scheduling and alerts: a seeded prediction stream and a small extra detector.

Runs use the package's MMD by default. ``MeanShiftDetector`` is a real two-sample test too
(per-dimension z-test on means, Bonferroni over dimensions) that counts its fits, so tests
can see that persisted state is reused instead of refitted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from shiftwatch.db import Database
from shiftwatch.detectors import DETECTORS, configs, references
from shiftwatch.detectors.base import Detector, DriftResult
from shiftwatch.settings import Settings
from shiftwatch_client.records import PredictionRecord
from tests.support.collector import store_predictions

NUM_CLASSES = 10
DIM = 64


class MeanShiftDetector(Detector):
    """Per-dimension z-test of the current mean against the reference mean; Bonferroni across dimensions."""

    name: ClassVar[str] = "meanshift"
    input_kind: ClassVar[str] = "embeddings"
    fits: ClassVar[int] = 0  # how many times any instance was fitted (tests check state reuse)

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def fit(self, reference: np.ndarray, **context: Any) -> MeanShiftDetector:
        type(self).fits += 1
        self.mean_ = reference.mean(axis=0)
        self.std_ = reference.std(axis=0, ddof=1) + 1e-9
        self.n_ = int(len(reference))
        return self

    def get_state(self) -> dict[str, Any]:
        return {"mean_": self.mean_, "std_": self.std_, "n_": self.n_}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any]) -> MeanShiftDetector:
        detector = cls(**config)
        detector.mean_, detector.std_, detector.n_ = state["mean_"], state["std_"], int(state["n_"])
        return detector

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        n = len(current)
        shift = (current.mean(axis=0) - self.mean_) / self.std_
        z = shift / np.sqrt(1.0 / self.n_ + 1.0 / n)
        p_dims = 2 * stats.norm.sf(np.abs(z))
        p_value = float(min(1.0, p_dims.min() * len(p_dims)))
        return DriftResult(
            method=self.name,
            statistic=float(np.abs(z).max()),
            p_value=p_value,
            threshold=self.alpha,
            drift=p_value <= self.alpha,
            n_reference=self.n_,
            n_current=n,
            effect_size=float(np.abs(shift).max()),
            effect_unit="reference std (largest dimension)",
            evidence={"p_dimensions": p_dims[:3]},
        )


# The package's detectors (MMD, ...) plus the small one above.
REGISTRY: dict[str, type[Detector]] = {**DETECTORS, "meanshift": MeanShiftDetector}


def records(
    start: datetime, n: int, *, shift: float = 0.0, confidence: float = 0.92, seed: int = 0, spacing_s: float = 1.0
) -> list[PredictionRecord]:
    """``n`` predictions of digits v1 from ``start``: N(shift, 1) embeddings, confident softmax outputs."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(shift, 1.0, size=(n, DIM)).astype(np.float32)
    predicted = rng.integers(0, NUM_CLASSES, n)
    top = np.clip(rng.normal(confidence, 0.03, n), 0.15, 0.995)
    probabilities = np.repeat(((1 - top) / (NUM_CLASSES - 1))[:, None], NUM_CLASSES, axis=1)
    probabilities[np.arange(n), predicted] = top
    return [
        PredictionRecord(
            model="digits",
            version="v1",
            predicted_class=int(predicted[i]),
            confidence=float(top[i]),
            embedding=embeddings[i],
            probabilities=probabilities[i].astype(np.float32),
            stream_id=f"cam-{i % 3}",
            input_ref=f"inputs/{seed}-{i}.png",
            ts=start + timedelta(seconds=i * spacing_s),
        )
        for i in range(n)
    ]


def log(db: Database, settings: Settings, batch: list[PredictionRecord]) -> None:
    store_predictions(db, settings, batch)


def pin_reference(db: Database, settings: Settings, version_id: int, start: datetime, n: int = 400) -> None:
    log(db, settings, records(start, n, seed=1))
    with db.session() as session:
        references.pin_time_range(session, version_id, start, start + timedelta(seconds=n + 1))


def pin_labeled_reference(db: Database, version_id: int, start: datetime, seed: int = 40, with_labels: bool = True) -> None:
    """An uploaded reference with labels (unless ``with_labels`` is False), calibrated: each prediction is right with
    probability equal to its confidence."""
    rng = np.random.default_rng(seed)
    reference = records(start, 400, seed=seed + 1)
    probabilities = np.stack([r.probabilities for r in reference])
    predicted = probabilities.argmax(axis=1)
    right = rng.uniform(size=len(reference)) < probabilities.max(axis=1)
    labels = np.where(right, predicted, (predicted + rng.integers(1, 10, len(reference))) % 10)
    with db.session() as session:
        references.pin_upload(
            session, version_id, embeddings=np.stack([r.embedding for r in reference]), probabilities=probabilities,
            labels=labels if with_labels else None,
        )


def add_config(db: Database, version_id: int, **overrides: Any) -> int:
    values: dict[str, Any] = {"window_last_n": 200, "schedule_seconds": 60, "confirm_runs": 1, "registry": REGISTRY}
    values.update(overrides)
    detector = values.pop("detector", "mmd")
    with db.session() as session:
        return configs.create(session, version_id, detector, **values).id
