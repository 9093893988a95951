"""Harm of a shift: how many points worse the model likely is, by which method, with its 95 % interval or why none.

Three sources, best first (issue 24: nothing is called accuracy that is not an accuracy estimate):

- ``labeled``: the prediction-powered (PPI++) accuracy of the alert's window from the labeling
  queue's random slice, against the labeled reference's accuracy: valid under any shift, with
  the one interval of a labeled rate (``detectors.intervals``). Set as the labels arrive
  (``labeling.alert_accuracy``).
- ``accuracy_estimate``: the label-free default (``detectors.label_free``: CBPE, its interval
  widened to hold ATC's and DoC's points, chosen on bench/accuracy_estimators.py) where the
  reference has labels and probabilities, else an ``accuracy_drop`` detector's estimate. It
  assumes P(correct | confidence) did not move; where the reliability check says it moved the
  harm is marked unreliable and asks for the random-slice labels that would settle it.
- ``confidence_drop``: without either, the drop in mean confidence (DoC). It is *not* an accuracy
  estimate: over- or under-confident models move it more or less than their accuracy (the
  demo: confidence fell 49 points while accuracy fell 22). It ranks alerts; it is shown as what
  it is, with no interval, and says what would give a real number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shiftwatch.detectors.base import DriftResult
from shiftwatch.detectors.intervals import labels_to_settle
from shiftwatch.detectors.label_free import LabelFree

# Points lost: below 2 a shift is worth a look, not a page; 5 or more is an incident.
MEDIUM_HARM_POINTS = 2.0
HIGH_HARM_POINTS = 5.0
NO_INTERVAL_FOR_CONFIDENCE = (
    "no interval: mean confidence is not accuracy and moves more or less than it; a reference with labels "
    "(set_reference(..., labels=...)) gives a label-free accuracy estimate with an interval, and with it the random "
    "slice's labels (shiftwatch labeling audit --alert ID) a measured one"
)
SETTLE_POINTS = 5.0  # the half-width the ask for labels aims at
# What passes every reliability check and is still wrong (bench/accuracy_estimators.py, unseen_class/2; the walk of
# docs/own-model-monitoring.md step 9 with a 2-layer MLP on digits plus gaussian noise 0.25: 90.1 % said, 77-79 % true).
BLIND_SPOT = ("inputs the model stays sure about while it gets them wrong (an unseen class at 10 % of a window read 8 points "
              "high on the bench; a user's MLP under noise, 11)")


def _ask_for_labels(accuracy: float) -> str:
    n = labels_to_settle(min(max(accuracy, 0.0), 1.0), SETTLE_POINTS / 100)
    return f"about {n} random-slice labels of this window would measure the accuracy to ±{SETTLE_POINTS:.0f} points"


@dataclass(frozen=True, slots=True)
class Harm:
    """A drop in points (positive = worse), what was measured, by which method, and its 95 % interval or why none."""

    points: float
    source: str  # labeled | accuracy_estimate | confidence_drop
    method: str = ""  # e.g. "CBPE, label-free", "prediction-powered, 100 random-slice labels"
    interval: tuple[float, float] | None = None  # of ``points``
    note: str = ""  # why there is no interval, or what the interval assumes
    accuracy: float | None = None  # the accuracy estimate itself (fraction) where there is one
    accuracy_interval: tuple[float, float] | None = None
    reference_accuracy: float | None = None
    reliable: bool | None = None  # a label-free estimate's reliability check; None where there was none

    @property
    def is_accuracy(self) -> bool:
        return self.source != "confidence_drop"

    def _measure(self) -> str:
        quantity = "accuracy" if self.source == "labeled" else "estimated accuracy" if self.is_accuracy else "mean confidence"
        text = f"{quantity} {describe(self.points)} than on the reference"
        if self.accuracy is not None and self.reference_accuracy is not None:
            text += f" ({100 * self.accuracy:.1f} % vs {100 * self.reference_accuracy:.1f} %)"
        if self.interval is not None:
            low, high = self.interval
            text += f", 95 % interval {low:.1f} to {high:.1f} points"
        text += f"; {self.method}" if self.method else ""
        return text + ("; UNRELIABLE" if self.reliable is False else "")

    def headline(self) -> str:
        """The harm, its interval (or that it has none) and its method: short enough for an alert's title."""
        return self._measure() + (", no interval" if self.interval is None else "")

    def sentence(self) -> str:
        """The harm with why it has no interval and what would settle it, for webhooks, console and CLI alike."""
        return self._measure() + (f"; {self.note}" if self.note else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "source": self.source,
            "method": self.method,
            "interval": None if self.interval is None else list(self.interval),
            "note": self.note,
            "accuracy": self.accuracy,
            "accuracy_interval": None if self.accuracy_interval is None else list(self.accuracy_interval),
            "reference_accuracy": self.reference_accuracy,
            "reliable": self.reliable,
            "sentence": self.sentence(),
        }


def confidence_drop(reference_confidence: np.ndarray, current_confidence: np.ndarray) -> Harm | None:
    """100 x (mean reference confidence - mean current confidence): a ranking signal, not an accuracy."""
    if len(reference_confidence) == 0 or len(current_confidence) == 0:
        return None
    drop = 100.0 * (float(np.mean(reference_confidence)) - float(np.mean(current_confidence)))
    return Harm(points=round(drop, 3), source="confidence_drop", method="confidence drop, not an accuracy estimate",
                note=f"{NO_INTERVAL_FOR_CONFIDENCE}; {_ask_for_labels(float(np.mean(current_confidence)))}")


def is_accuracy_estimate(effect_unit: str | None) -> bool:
    return bool(effect_unit) and "accuracy" in str(effect_unit).lower()


def from_accuracy_estimate(result: DriftResult) -> Harm:
    """An ``accuracy_drop`` run's estimate as harm: the drop with its bootstrap interval and the method's name."""
    evidence = result.evidence or {}
    reference = evidence.get("reference_accuracy")
    estimate, interval = evidence.get("estimated_accuracy"), evidence.get("interval")
    points_interval = None
    if reference is not None and interval:
        points_interval = (100 * (reference - interval[1]), 100 * (reference - interval[0]))
    method = str(evidence.get("method") or result.method.removeprefix("accuracy_drop_")).upper()
    return Harm(
        points=float(result.effect_size or 0.0) if estimate is None or reference is None else 100 * (reference - estimate),
        source="accuracy_estimate",
        method=f"{method}, label-free",
        interval=points_interval,
        note=("it assumes P(correct | confidence) did not move, which no label-free method can check; "
              + _ask_for_labels(float(estimate if estimate is not None else 0.5))
              + ("" if points_interval is not None else "; no interval in the estimator's evidence")),
        accuracy=None if estimate is None else float(estimate),
        accuracy_interval=None if not interval else (float(interval[0]), float(interval[1])),
        reference_accuracy=None if reference is None else float(reference),
    )


def from_label_free(estimate: LabelFree) -> Harm:
    """The label-free default as harm: its widened interval, every estimator's point, and the reliability verdict."""
    reference = estimate.reference_accuracy
    low, high = estimate.interval
    verdict = estimate.reliability
    others = ", ".join(f"{name.upper() if name != 'confidence' else 'average confidence'} {100 * value:.1f} %"
                       for name, value in estimate.estimates.items() if name != estimate.method)
    ask = (f"about {estimate.labels_to_settle} random-slice labels of this window would measure the accuracy "
           f"to ±{SETTLE_POINTS:.0f} points")
    if verdict.reliable:
        note = (f"it assumes P(correct | confidence) did not move; the reliability checks passed ({others}), but no "
                f"label-free check sees {BLIND_SPOT}; {ask}")
    else:
        note = f"unreliable: {'; '.join(verdict.reasons)} ({others}); {ask}"
    return Harm(
        points=100 * (reference - estimate.estimated_accuracy),
        source="accuracy_estimate",
        method=f"{estimate.method.upper()}, label-free, interval widened to ATC and DoC",
        interval=(100 * (reference - high), 100 * (reference - low)),
        note=note,
        accuracy=estimate.estimated_accuracy,
        accuracy_interval=(low, high),
        reference_accuracy=reference,
        reliable=verdict.reliable,
    )


def is_labeled_accuracy(result: DriftResult) -> bool:
    """A run of a labeled detector: its accuracy was measured on uniform labels, not estimated."""
    return "current_interval" in (result.evidence or {}) and is_accuracy_estimate(result.effect_unit)


def from_labeled_accuracy(result: DriftResult) -> Harm:
    """A ``labeled_accuracy`` run as harm: the realized accuracy of the window's uniform labels, with its exact interval."""
    evidence = result.evidence
    labels = evidence.get("labels") or {}
    n, reference_n = labels.get("n", result.n_current), labels.get("reference_n", result.n_reference)
    low, high = evidence["drop_interval_points"]
    current_low, current_high = evidence["current_interval"]
    return Harm(
        points=100.0 * (evidence["reference_accuracy"] - evidence["current_accuracy"]),
        source="labeled",
        method=f"measured: {n} uniform labels, exact interval",
        interval=(float(low), float(high)),
        note=f"the reference's accuracy from its {reference_n} labels",
        accuracy=float(evidence["current_accuracy"]),
        accuracy_interval=(float(current_low), float(current_high)),
        reference_accuracy=float(evidence["reference_accuracy"]),
    )


def best(results: list[DriftResult], reference_confidence: np.ndarray | None, current_confidence: np.ndarray,
         label_free: LabelFree | None = None) -> Harm | None:
    """The harm a tick supports: a measured (labeled) accuracy, else the label-free default, else the largest
    ``accuracy_drop`` estimate, else the confidence drop."""
    measured = [from_labeled_accuracy(r) for r in results if is_labeled_accuracy(r)]
    if measured:
        return max(measured, key=lambda h: h.points)
    if label_free is not None:
        return from_label_free(label_free)
    estimates = [from_accuracy_estimate(r) for r in results if is_accuracy_estimate(r.effect_unit)]
    if estimates:
        return max(estimates, key=lambda h: h.points)
    if reference_confidence is None:
        return None
    return confidence_drop(reference_confidence, current_confidence)


def from_dict(data: dict[str, Any] | None) -> Harm | None:
    """The harm stored in an alert's evidence, back as a ``Harm``."""
    if not data:
        return None
    pair = lambda key: None if data.get(key) is None else (float(data[key][0]), float(data[key][1]))
    return Harm(points=float(data["points"]), source=str(data["source"]), method=str(data.get("method", "")),
                interval=pair("interval"), note=str(data.get("note", "")), accuracy=data.get("accuracy"),
                accuracy_interval=pair("accuracy_interval"), reference_accuracy=data.get("reference_accuracy"),
                reliable=data.get("reliable"))


def severity(harm: Harm | None) -> str:
    """low / medium / high by points lost; unknown harm is medium (someone should look)."""
    if harm is None:
        return "medium"
    if harm.points >= HIGH_HARM_POINTS:
        return "high"
    if harm.points >= MEDIUM_HARM_POINTS:
        return "medium"
    return "low"


def describe(points: float) -> str:
    """A change in words ("12.4 points lower"): a bare "-12.4 pts" read as an accuracy of -12 (issue 17)."""
    return f"{abs(points):.1f} points {'lower' if points >= 0 else 'higher'}"
