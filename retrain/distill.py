"""Knowledge distillation: a narrower student trained on the teacher's soft targets plus the labels."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from shiftwatch.errors import Invalid
from shiftwatch.retrain.reference_model import DigitsCNN, ProgressCallback, TrainConfig, deterministic, fit, predict


@dataclass(frozen=True, slots=True)
class DistillConfig:
    # Student channels = teacher channels x width: 0.5 has a quarter of the conv multiply-adds.
    width: float = 0.5
    epochs: int = 12


def student_channels(teacher: DigitsCNN, width: float) -> tuple[int, int, int]:
    if not 0.0 < width <= 1.0:
        raise Invalid("width", "must be in (0, 1]")
    c1, c2, c3 = (max(2, round(c * width)) for c in teacher.channels)
    return c1, c2, c3


def teacher_targets(teacher: DigitsCNN, images: np.ndarray) -> np.ndarray:
    """The teacher's logits on the training images (soft targets are computed once, not per batch)."""
    logits, _ = predict(teacher, images)
    return logits


def distill(
    teacher: DigitsCNN,
    images: np.ndarray,
    labels: np.ndarray,
    train: TrainConfig,
    config: DistillConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> DigitsCNN:
    """Train a fresh student (same embedding size, so detectors see a 64-d embedding either way)."""
    config = config or DistillConfig()
    targets = teacher_targets(teacher, images)
    with deterministic(train.seed):
        student = DigitsCNN(
            student_channels(teacher, config.width), embedding_dim=teacher.embedding_dim, num_classes=teacher.num_classes
        )
    fit(student, images, labels, replace(train, epochs=config.epochs), teacher_logits=targets, progress=progress)
    return student
