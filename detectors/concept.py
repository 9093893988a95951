"""Concept drift with labels: windowed accuracy against the reference accuracy, and an online change detector.

``LabeledAccuracyDetector`` tests "current accuracy is lower than the reference's" one-sided:
Fisher's exact test on the 2x2 table of correct/incorrect; with ``stream_ids`` / ``timestamps``
the counts are shrunk to effective sizes ``n / tau`` (``dependence``) first, because
neighbouring frames tend to be right or wrong together (a short window's tau is taken to be at
least the reference's: a few labels per camera cannot show their own dependence). The normal
approximation it replaced paged at 0.06-0.08 for alpha 0.05 on windows of 20-100 labels
(bench/concept_drift.py).
Input arrays are per-sample correctness (1 = the prediction matched the label).

``AccuracyChangeMonitor`` watches the stream of correct/incorrect one label at a time with
river's ADWIN (delta bounds its false-alarm probability) and reports a change only when the
error rate went up. Its state is the recent window of outcomes, replayed into a fresh ADWIN
on load (no pickle).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from river.drift import ADWIN
from scipy import stats

from shiftwatch.detectors.base import DriftResult
from shiftwatch.detectors.dependence import effective_sample_size
from shiftwatch.detectors.intervals import PROPORTION_METHOD, difference_interval, proportion_interval
from shiftwatch.detectors.two_sample import TwoSampleDetector, as_context
from shiftwatch.errors import Invalid


def as_outcomes(values: Any, field: str) -> np.ndarray:
    outcomes = np.asarray(values, dtype=np.float64).ravel()
    if outcomes.size == 0:
        raise Invalid(field, "is empty")
    if not np.isin(outcomes, (0.0, 1.0)).all():
        raise Invalid(field, "must hold 0/1 correctness flags")
    return outcomes


def n_effective(outcomes: np.ndarray, context: dict[str, Any]) -> float:
    stream_ids = as_context(context.get("stream_ids"), len(outcomes), "stream_ids")
    timestamps = as_context(context.get("timestamps"), len(outcomes), "timestamps")
    if (stream_ids is None and timestamps is None) or outcomes.std() == 0:
        return float(len(outcomes))
    return effective_sample_size(outcomes, stream_ids, timestamps)


class LabeledAccuracyDetector(TwoSampleDetector):
    """One-sided test that the labeled accuracy of the current window is below the reference's."""

    name = "labeled_accuracy"
    input_kind = "correctness"
    # The effect is harm (accuracy points), not a distance: its margin gates at every window size.
    effect_window = 0

    def __init__(self, alpha: float = 0.05, min_effect_size: float = 2.0) -> None:
        self.alpha = alpha
        self.min_effect_size = min_effect_size  # accuracy points

    def fit(self, reference: np.ndarray, **context: Any) -> LabeledAccuracyDetector:
        outcomes = as_outcomes(reference, "reference")
        self.reference_accuracy_ = float(outcomes.mean())
        self.reference_n_ = float(len(outcomes))
        self.reference_n_eff_ = n_effective(outcomes, context)
        return self

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        self.check_fitted()
        outcomes = as_outcomes(current, "current")
        accuracy = float(outcomes.mean())
        # A short window cannot see its own serial dependence: at least the reference's, measured on many more labels.
        n_eff = min(n_effective(outcomes, context), len(outcomes) * self.reference_n_eff_ / self.reference_n_)
        # Fisher's exact test on the counts at the effective sizes: the plain table when labels are independent.
        sizes = [max(1, round(self.reference_n_eff_)), max(1, round(n_eff))]
        right = [round(self.reference_accuracy_ * sizes[0]), round(accuracy * sizes[1])]
        table = np.array([[right[0], sizes[0] - right[0]], [right[1], sizes[1] - right[1]]], dtype=np.int64)
        p_value = float(stats.fisher_exact(table, alternative="greater")[1])
        drop = 100.0 * (self.reference_accuracy_ - accuracy)
        # The one interval of a labeled rate, at the effective sizes (correlated frames are worth fewer labels).
        current_interval = proportion_interval(accuracy * n_eff, n_eff)
        reference_interval = proportion_interval(self.reference_accuracy_ * self.reference_n_eff_, self.reference_n_eff_)
        _, drop_low, drop_high = difference_interval(
            (self.reference_accuracy_, *reference_interval), (accuracy, *current_interval)
        )
        return DriftResult(
            method=self.name,
            statistic=accuracy,
            p_value=p_value,
            threshold=self.alpha,
            **self.decide(p_value, drop, int(self.reference_n_), len(outcomes)).fields(),
            n_reference=int(self.reference_n_),
            n_current=len(outcomes),
            effect_size=max(drop, 0.0),
            effect_unit="labeled accuracy drop, percentage points",
            evidence={
                "reference_accuracy": self.reference_accuracy_,
                "current_accuracy": accuracy,
                "n_effective": [self.reference_n_eff_, n_eff],
                "reference_interval": list(reference_interval),
                "current_interval": list(current_interval),
                "drop_interval_points": [100.0 * drop_low, 100.0 * drop_high],
                "interval_method": f"{PROPORTION_METHOD} at the effective sample size, 95 %",
            },
        )


class AccuracyChangeMonitor:
    """ADWIN on the error stream: ``update(correct)`` is True when the error rate has just risen."""

    def __init__(self, delta: float = 0.002) -> None:
        self.delta = delta  # ADWIN's bound on a false alarm per check
        self._adwin = ADWIN(delta=delta)
        self._recent: list[float] = []

    @property
    def error_rate(self) -> float:
        return float(self._adwin.estimation)

    def update(self, correct: bool) -> bool:
        before = self._adwin.estimation
        error = 0.0 if correct else 1.0
        self._adwin.update(error)
        self._recent.append(error)
        width = int(self._adwin.width)
        if len(self._recent) > 2 * width + 64:
            self._recent = self._recent[-width:]
        return bool(self._adwin.drift_detected and self._adwin.estimation > before)

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def get_state(self) -> dict[str, np.ndarray]:
        return {"recent_errors_": np.array(self._recent[-int(self._adwin.width) :] if self._adwin.width else [], dtype=np.int8)}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any]) -> AccuracyChangeMonitor:
        monitor = cls(**config)
        for error in np.asarray(state.get("recent_errors_", []), dtype=np.float64):
            monitor._adwin.update(float(error))
            monitor._recent.append(float(error))
        return monitor
