"""Estimated harm of a shift: accuracy points lost, label-free, and the severity it earns.

Preferred source: an accuracy-estimating detector (ATC, CBPE) configured on the same model
version, whose result's effect is an accuracy drop in points. Without one, the difference of
mean confidences between reference and current (DoC, Guillory et al. 2021): under a model that
is calibrated on the reference, mean confidence tracks accuracy, so its drop estimates the
accuracy drop. It is a floor-level estimator, good enough to rank alerts and to tell "the
inputs moved" (low) from "the model got worse" (high).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Points of accuracy lost: below 2 a shift is worth a look, not a page; 5 or more is an incident.
MEDIUM_HARM_POINTS = 2.0
HIGH_HARM_POINTS = 5.0


@dataclass(frozen=True, slots=True)
class Harm:
    """An accuracy drop in points (positive = worse) and where the number came from."""

    points: float
    source: str


def confidence_drop(reference_confidence: np.ndarray, current_confidence: np.ndarray) -> Harm | None:
    """DoC: 100 x (mean reference confidence - mean current confidence)."""
    if len(reference_confidence) == 0 or len(current_confidence) == 0:
        return None
    drop = 100.0 * (float(np.mean(reference_confidence)) - float(np.mean(current_confidence)))
    return Harm(points=round(drop, 3), source="confidence_drop")


def is_accuracy_estimate(effect_unit: str | None) -> bool:
    return bool(effect_unit) and "accuracy" in str(effect_unit).lower()


def severity(harm: Harm | None) -> str:
    """low / medium / high by accuracy points lost; unknown harm is medium (someone should look)."""
    if harm is None:
        return "medium"
    if harm.points >= HIGH_HARM_POINTS:
        return "high"
    if harm.points >= MEDIUM_HARM_POINTS:
        return "medium"
    return "low"


def describe(points: float) -> str:
    """Accuracy change in words ("12.4 points lower"): a bare "-12.4 pts" read as an accuracy of -12 (issue 17)."""
    return f"{abs(points):.1f} points {'lower' if points >= 0 else 'higher'}"
