"""The label-free accuracy an alert shows before labels arrive, its interval, and whether to believe it (issue 24).

Every label-free estimator (``detectors.accuracy``: CBPE, ATC, DoC, average confidence) assumes
the shift left P(correct | confidence) alone. Nothing label-free can prove that, but three
signals measurably flag the windows where it broke (bench/accuracy_estimators.py):

- *disagreement*: CBPE, ATC and DoC read the same confidences three ways; where the shift kept
  the calibration they agree within a few points, where it broke (contrast: confidence falls,
  accuracy does not) they part.
- *out of support*: the share of the window less confident than all but ``MIN_SUPPORT`` of the
  reference's samples: there the reference's calibration is extrapolated, which its bootstrap
  cannot see (a region with no reference sample resamples to no sample either).
- *new content*: the share of the window's predicted classes that moved (total variation
  between the predicted-class mixes): an unseen class lands in the classes the model knows.

The default (``DEFAULT``) was chosen by coverage first, then error, on that bench. Its interval
is the bootstrap interval of the estimate (reference and window resampled, plus the window's own
outcome noise) widened to hold the other estimators' points and half their spread beyond: where
they agree that costs little, where they part the interval says so. A flagged estimate is shown as unreliable with the random-slice labels that would settle it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from shiftwatch.detectors.accuracy import AccuracyEstimator, as_labels, score
from shiftwatch.detectors.bbsd import as_probabilities
from shiftwatch.detectors.intervals import labels_to_settle

DEFAULT = "cbpe"
METHODS = ("cbpe", "atc", "doc", "confidence")
COMPARED = ("cbpe", "atc", "doc")  # the estimators whose spread widens the interval and flags disagreement
# Thresholds set on bench/accuracy_estimators.py (digits CNN, 10 shift families, windows of 500).
MAX_SPREAD_POINTS = 6.0
MAX_LOW_CONFIDENCE_SHARE = 0.10  # of the window below the reference's MIN_SUPPORT-th lowest confidence
MAX_PREDICTED_CLASS_SHIFT = 0.15  # total variation between the reference's and the window's predicted classes
SPREAD_MARGIN = 0.5  # the interval reaches past the estimators' extreme points by this share of their spread
MIN_SUPPORT = 10  # reference samples below a confidence for its calibration there to count as measured
MIN_WINDOW = 20  # predictions a window needs before its label-free estimate is shown
SETTLE_HALF_WIDTH = 0.05  # the interval half-width the ask for labels aims at


@dataclass(frozen=True, slots=True)
class Reliability:
    """Whether a label-free estimate can be believed, the signals that say so and why not."""

    reliable: bool
    reasons: tuple[str, ...]
    spread_points: float
    low_confidence_share: float
    predicted_class_shift: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "reliable": self.reliable,
            "reasons": list(self.reasons),
            "spread_points": self.spread_points,
            "low_confidence_share": self.low_confidence_share,
            "predicted_class_shift": self.predicted_class_shift,
        }


@dataclass(frozen=True, slots=True)
class LabelFree:
    """The default estimate with its widened interval, every estimator's point, and the reliability verdict."""

    method: str
    estimated_accuracy: float
    interval: tuple[float, float]
    bootstrap_interval: tuple[float, float]
    estimates: dict[str, float]
    reference_accuracy: float
    reliability: Reliability
    labels_to_settle: int  # random-slice labels for a ±SETTLE_HALF_WIDTH exact interval

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "estimated_accuracy": self.estimated_accuracy,
            "interval": list(self.interval),
            "bootstrap_interval": list(self.bootstrap_interval),
            "estimates": dict(self.estimates),
            "reference_accuracy": self.reference_accuracy,
            "reliability": self.reliability.to_dict(),
            "labels_to_settle": self.labels_to_settle,
        }


def predicted_class_shift(reference_probs: np.ndarray, current_probs: np.ndarray) -> float:
    """Total variation distance between the predicted-class mixes of the reference and the window."""
    classes = reference_probs.shape[1]
    ref = np.bincount(reference_probs.argmax(axis=1), minlength=classes) / len(reference_probs)
    cur = np.bincount(current_probs.argmax(axis=1), minlength=classes) / len(current_probs)
    return float(0.5 * np.abs(ref - cur).sum())


def reliability(reference_probs: np.ndarray, current_probs: np.ndarray, estimates: dict[str, float]) -> Reliability:
    """The three signals of the module docstring against their thresholds."""
    points = [100 * estimates[m] for m in COMPARED if m in estimates]
    spread = float(max(points) - min(points)) if points else 0.0
    reference_confidence = np.sort(score(reference_probs, "max_confidence"))
    cutoff = reference_confidence[min(MIN_SUPPORT, len(reference_confidence)) - 1]
    low_share = float(np.mean(score(current_probs, "max_confidence") < cutoff))
    moved = predicted_class_shift(reference_probs, current_probs)
    reasons = []
    if spread > MAX_SPREAD_POINTS:
        reasons.append(f"the estimators disagree by {spread:.1f} points (CBPE, ATC, DoC): the calibration moved")
    if low_share > MAX_LOW_CONFIDENCE_SHARE:
        reasons.append(f"{100 * low_share:.0f} % of the window is less confident than all but {MIN_SUPPORT} reference "
                       "samples: the calibration is extrapolated there")
    if moved > MAX_PREDICTED_CLASS_SHIFT:
        reasons.append(f"{100 * moved:.0f} % of predictions moved to other classes: new content or label shift")
    return Reliability(not reasons, tuple(reasons), spread, low_share, moved)


def estimate(reference_probs: Any, reference_labels: Any, current_probs: Any, seed: int = 0,
             confidence_level: float = 0.95) -> LabelFree:
    """The default label-free estimate of ``current_probs``, its interval, every estimator's point and the verdict."""
    ref = as_probabilities(reference_probs, "reference_probs")
    labels = as_labels(reference_labels, len(ref), ref.shape[1])
    cur = as_probabilities(current_probs, "current_probs", classes=ref.shape[1])
    fitted = {m: AccuracyEstimator(m, confidence_level=confidence_level, seed=seed).fit(ref, labels) for m in METHODS}  # type: ignore[arg-type]
    chance = {m: e.predicted_correct(cur) for m, e in fitted.items()}
    points = {m: float(c.mean()) for m, c in chance.items()}
    default = fitted[DEFAULT].estimate(cur)
    # The alert's number is this window's realized accuracy: its right/wrong outcomes given the scores are
    # Bernoulli draws the bootstrap of mean calibrated confidence does not see (about 1.4 points at 1,000).
    z = float(stats.norm.ppf(0.5 + confidence_level / 2))
    outcomes = z * float(np.sqrt(np.sum(chance[DEFAULT] * (1 - chance[DEFAULT])))) / len(cur)
    point = default.estimated_accuracy
    low = point - float(np.hypot(point - default.interval[0], outcomes))
    high = point + float(np.hypot(default.interval[1] - point, outcomes))
    compared = [points[m] for m in COMPARED]
    # Past the estimators' extreme points by half their spread: on the bench, where calibration held within
    # 2 points, CBPE was still 1.1-1.3 points off under noise and rescaling, and the extremes alone covered
    # 0.85 of those windows; with the half spread, 0.95-1.0.
    margin = SPREAD_MARGIN * (max(compared) - min(compared))
    low, high = max(0.0, min(low, *compared) - margin), min(1.0, max(high, *compared) + margin)
    verdict = reliability(ref, cur, points)
    return LabelFree(
        method=DEFAULT,
        estimated_accuracy=default.estimated_accuracy,
        interval=(float(low), float(high)),
        bootstrap_interval=default.interval,
        estimates=points,
        reference_accuracy=default.reference_accuracy,
        reliability=verdict,
        labels_to_settle=labels_to_settle(min(max(default.estimated_accuracy, 0.0), 1.0), SETTLE_HALF_WIDTH, confidence_level),
    )
