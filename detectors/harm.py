"""Estimated harm of a shift: the label-free accuracy drop, used to rank alerts and set their severity.

A shift that is real but leaves accuracy alone is reported at low severity: the detectors
say *that* the inputs changed, the accuracy estimate says whether it *matters*.
"""

from __future__ import annotations

from typing import Any

from shiftwatch.detectors.accuracy import AccuracyEstimate, AccuracyEstimator
from shiftwatch.detectors.base import DriftResult

# Accuracy points: under 1 is within what the estimators resolve on a 500-sample window
# (bench/detectors_quality.py MAE); 5 points is a drop a product owner notices.
LOW_HARM_POINTS = 1.0
HIGH_HARM_POINTS = 5.0


def estimate_harm(reference_probs: Any, reference_labels: Any, current_probs: Any, method: str = "atc") -> AccuracyEstimate:
    """Label-free estimate of the current accuracy and its drop from the reference (``estimated_drop_points``)."""
    return AccuracyEstimator(method).fit(reference_probs, reference_labels).estimate(current_probs)  # type: ignore[arg-type]


def severity(result: DriftResult, harm_points: float | None) -> str:
    """'none' without drift; else by estimated harm: 'low' (< 1 point), 'medium', 'high' (>= 5 points).

    Without a harm estimate (no labeled reference probabilities) a drift is 'medium'.
    """
    if not result.drift:
        return "none"
    if harm_points is None:
        return "medium"
    if harm_points < LOW_HARM_POINTS:
        return "low"
    return "high" if harm_points >= HIGH_HARM_POINTS else "medium"
