"""Label-free accuracy estimates from confidences: ATC and a CBPE-style calibrated estimator, each with a bootstrap interval.

- ATC (average thresholded confidence, Garg et al. 2022): on the labeled reference, find the
  score threshold t above which the share of samples equals the reference accuracy; the
  current accuracy is estimated as the share of current samples scoring above t. Score:
  negative entropy by default (the paper's better variant) or top-class confidence.
- CBPE-style (confidence-based performance estimation, as in NannyML): calibrate the top-class
  confidence to P(correct) on the reference with isotonic regression; the current accuracy is
  the mean calibrated confidence.

Intervals: percentile bootstrap over both the reference (threshold / calibration refitted)
and the current window, so the interval covers both sources of error. Both estimators
assume the shift leaves P(correct | score) alone (covariate shift); under label shift or an
unseen class they can be optimistic -- bench/detectors_quality.py reports the error per shift.

``AccuracyDropDetector`` turns an estimate into a decision: drift when the estimated drop
from the reference accuracy is significant (bootstrap) AND at least ``margin`` points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression

from shiftwatch.detectors.base import DriftResult
from shiftwatch.detectors.bbsd import as_probabilities
from shiftwatch.detectors.intervals import PoweredInterval, prediction_powered_accuracy
from shiftwatch.detectors.two_sample import TwoSampleDetector
from shiftwatch.errors import Invalid

Method = Literal["atc", "cbpe", "doc", "confidence"]
# 200 resamples: the 2.5/97.5 % bounds move by well under a point between seeds.
N_BOOTSTRAP = 200


@dataclass(frozen=True, slots=True)
class AccuracyEstimate:
    """An estimated accuracy with its interval and the reference accuracy it is compared with (fractions)."""

    method: str
    estimated_accuracy: float
    interval: tuple[float, float]
    confidence_level: float
    reference_accuracy: float
    n_reference: int
    n_current: int
    bootstrap_drops: np.ndarray  # reference accuracy minus estimate, per resample

    @property
    def estimated_drop_points(self) -> float:
        return 100.0 * (self.reference_accuracy - self.estimated_accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "estimated_accuracy": self.estimated_accuracy,
            "interval": list(self.interval),
            "confidence_level": self.confidence_level,
            "reference_accuracy": self.reference_accuracy,
            "estimated_drop_points": self.estimated_drop_points,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
        }


def as_labels(values: Any, n: int, classes: int, field: str = "reference_labels") -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim != 1 or len(labels) != n:
        raise Invalid(field, f"must be a 1-d array of {n} labels, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating) or not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise Invalid(field, "must be integer class indices")
        labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= classes:
        raise Invalid(field, f"class indices must lie in [0, {classes})")
    return labels


def score(probs: np.ndarray, kind: str) -> np.ndarray:
    """Confidence score per sample: negative entropy or top-class probability."""
    if kind == "max_confidence":
        return probs.max(axis=1).astype(np.float64)
    p = np.clip(probs.astype(np.float64), 1e-12, 1.0)
    return (p * np.log(p)).sum(axis=1)


def atc_correct(ref_scores: np.ndarray, ref_correct: np.ndarray, cur_scores: np.ndarray) -> np.ndarray:
    """ATC per sample: 1 above the reference threshold whose share equals the reference accuracy."""
    threshold = np.quantile(ref_scores, 1.0 - ref_correct.mean())
    return (cur_scores > threshold).astype(np.float64)


def cbpe_correct(ref_scores: np.ndarray, ref_correct: np.ndarray, cur_scores: np.ndarray) -> np.ndarray:
    """CBPE per sample: the confidence calibrated to P(correct) on the reference (isotonic)."""
    calibration = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(ref_scores, ref_correct)
    return calibration.predict(cur_scores)


def doc_correct(ref_scores: np.ndarray, ref_correct: np.ndarray, cur_scores: np.ndarray) -> np.ndarray:
    """DoC per sample (Guillory et al. 2021): the confidence shifted by the reference's accuracy minus its mean confidence."""
    return np.clip(cur_scores + (ref_correct.mean() - ref_scores.mean()), 0.0, 1.0)


def confidence_correct(ref_scores: np.ndarray, ref_correct: np.ndarray, cur_scores: np.ndarray) -> np.ndarray:
    """Average confidence per sample: the top-class probability taken at its word (no reference needed)."""
    return np.asarray(cur_scores, dtype=np.float64)


def atc_estimate(ref_scores: np.ndarray, ref_correct: np.ndarray, cur_scores: np.ndarray) -> float:
    return float(atc_correct(ref_scores, ref_correct, cur_scores).mean())


def cbpe_estimate(ref_scores: np.ndarray, ref_correct: np.ndarray, cur_scores: np.ndarray) -> float:
    return float(cbpe_correct(ref_scores, ref_correct, cur_scores).mean())


def doc_estimate(ref_scores: np.ndarray, ref_correct: np.ndarray, cur_scores: np.ndarray) -> float:
    return float(doc_correct(ref_scores, ref_correct, cur_scores).mean())


def confidence_estimate(ref_scores: np.ndarray, ref_correct: np.ndarray, cur_scores: np.ndarray) -> float:
    return float(np.mean(cur_scores))


ESTIMATORS = {"atc": atc_estimate, "cbpe": cbpe_estimate, "doc": doc_estimate, "confidence": confidence_estimate}
PER_SAMPLE = {"atc": atc_correct, "cbpe": cbpe_correct, "doc": doc_correct, "confidence": confidence_correct}


@dataclass(frozen=True, slots=True)
class ReferenceScores:
    """What an estimator learns from the labeled reference: each sample's confidence score and whether it was right."""

    scores: np.ndarray
    correct: np.ndarray  # 1.0 where the predicted class was the label
    n_classes: int


class AccuracyEstimator:
    """Fit on labeled reference probabilities; estimate the accuracy of unlabeled current probabilities."""

    reference_: ReferenceScores | None = None  # set by ``fit`` (or ``fitted_on``)

    def __init__(self, method: Method = "atc", score_kind: str | None = None, confidence_level: float = 0.95, seed: int = 0) -> None:
        if method not in ESTIMATORS:
            raise Invalid("method", f"unknown accuracy estimator {method!r}; known: {', '.join(ESTIMATORS)}")
        self.method = method
        # ATC works best on negative entropy; CBPE, DoC and average confidence use the top-class confidence.
        self.score_kind = score_kind or ("negative_entropy" if method == "atc" else "max_confidence")
        self.confidence_level = confidence_level
        self.seed = seed

    def fit(self, reference_probs: Any, reference_labels: Any) -> AccuracyEstimator:
        probs = as_probabilities(reference_probs, "reference_probs")
        labels = as_labels(reference_labels, len(probs), probs.shape[1])
        correct = (probs.argmax(axis=1) == labels).astype(np.float64)
        return self.fitted_on(ReferenceScores(score(probs, self.score_kind), correct, probs.shape[1]))

    def fitted_on(self, reference: ReferenceScores) -> AccuracyEstimator:
        """This estimator with ``reference`` as what it learned (a detector restored from its state)."""
        self.reference_ = reference
        return self

    def fitted_reference(self) -> ReferenceScores:
        """What ``fit`` learned; ``Invalid`` before it ran."""
        if self.reference_ is None:
            raise Invalid("estimator", "fit on labeled reference probabilities first")
        return self.reference_

    def predicted_correct(self, current_probs: Any) -> np.ndarray:
        """Per sample, the estimator's P(correct): CBPE's calibrated confidence, ATC's 0/1 above-threshold."""
        reference = self.fitted_reference()
        cur = score(as_probabilities(current_probs, "current_probs", classes=reference.n_classes), self.score_kind)
        return PER_SAMPLE[self.method](reference.scores, reference.correct, cur)

    def estimate_with_labels(
        self, current_probs: Any, slice_probs: Any, slice_labels: Any
    ) -> PoweredInterval:
        """The current accuracy from this estimator's predictions plus the labeled random slice (PPI, valid under any shift)."""
        predicted = self.predicted_correct(slice_probs)
        n_classes = self.fitted_reference().n_classes
        probs = as_probabilities(slice_probs, "slice_probs", classes=n_classes)
        labels = as_labels(slice_labels, len(probs), n_classes, field="slice_labels")
        correct = (probs.argmax(axis=1) == labels).astype(np.float64)
        return prediction_powered_accuracy(self.predicted_correct(current_probs), predicted, correct, self.confidence_level)

    def estimate(self, current_probs: Any) -> AccuracyEstimate:
        reference = self.fitted_reference()
        probs = as_probabilities(current_probs, "current_probs", classes=reference.n_classes)
        cur = score(probs, self.score_kind)
        ref, correct = reference.scores, reference.correct
        estimator = ESTIMATORS[self.method]
        point = estimator(ref, correct, cur)
        rng = np.random.default_rng(self.seed)
        boot = np.empty(N_BOOTSTRAP)
        drops = np.empty(N_BOOTSTRAP)
        for b in range(N_BOOTSTRAP):
            r = rng.integers(0, len(ref), len(ref))
            c = rng.integers(0, len(cur), len(cur))
            boot[b] = estimator(ref[r], correct[r], cur[c])
            drops[b] = correct[r].mean() - boot[b]
        tail = 100.0 * (1.0 - self.confidence_level) / 2.0
        low, high = np.percentile(boot, [tail, 100.0 - tail])
        return AccuracyEstimate(
            method=self.method,
            estimated_accuracy=point,
            interval=(float(low), float(high)),
            confidence_level=self.confidence_level,
            reference_accuracy=float(correct.mean()),
            n_reference=len(ref),
            n_current=len(cur),
            bootstrap_drops=drops,
        )


class AccuracyDropDetector(TwoSampleDetector):
    """Alerts when the label-free accuracy estimate fell significantly AND by at least ``min_effect_size`` points."""

    name = "accuracy_drop"
    input_kind = "probabilities"
    # The effect is harm (accuracy points), not a distance: its margin gates at every window size.
    effect_window = 0

    # CBPE by measurement (bench/accuracy_estimators.py): worst coverage 0.8 vs ATC's 0.6 on the calibrated cases,
    # error 0.7 vs 1.3 points there.
    def __init__(self, alpha: float = 0.05, method: Method = "cbpe", min_effect_size: float = 3.0, seed: int = 0) -> None:
        self.alpha = alpha
        self.method = method
        self.min_effect_size = min_effect_size  # the configured margin, accuracy points
        self.seed = seed

    def fit(self, reference: np.ndarray, **context: Any) -> AccuracyDropDetector:
        if context.get("labels") is None:
            raise Invalid("labels", "the accuracy estimators need labels for the reference window")
        fitted = AccuracyEstimator(self.method, seed=self.seed).fit(reference, context["labels"]).fitted_reference()
        # Three plain arrays, not ReferenceScores: they are the stored state (get_state / from_state).
        self.reference_scores_, self.reference_correct_, self.n_classes_ = fitted.scores, fitted.correct, fitted.n_classes
        return self

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        self.check_fitted()
        reference = ReferenceScores(self.reference_scores_, self.reference_correct_, int(self.n_classes_))
        estimate = AccuracyEstimator(self.method, seed=self.seed).fitted_on(reference).estimate(current)
        # One-sided bootstrap p-value for "no drop": resamples where the estimate did not fall.
        p_value = float((1 + np.count_nonzero(estimate.bootstrap_drops <= 0)) / (1 + N_BOOTSTRAP))
        drop = estimate.estimated_drop_points
        return DriftResult(
            method=f"{self.name}_{self.method}",
            statistic=estimate.estimated_accuracy,
            p_value=p_value,
            threshold=self.alpha,
            **self.decide(p_value, drop, estimate.n_reference, estimate.n_current).fields(),
            n_reference=estimate.n_reference,
            n_current=estimate.n_current,
            effect_size=max(drop, 0.0),
            effect_unit="estimated accuracy drop, percentage points",
            evidence=estimate.to_dict(),
        )
