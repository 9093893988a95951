"""Black-box shift detection on model outputs: confidences (KS), predicted-class counts (chi-squared), class probabilities (KS).

Works on (n, k) class-probability arrays only, so it needs no access to the model or its
embeddings. Correlated streams: KS tests use effective sample sizes ``n / tau``; the
chi-squared statistic is divided by the design effect ``tau`` (Rao-Scott first-order
correction), both from ``dependence``. ``BBSDDetector`` runs all three and combines them
with Bonferroni (p = min(1, 3 * smallest p)).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from shiftwatch.detectors.base import DriftResult
from shiftwatch.detectors.dependence import effective_sample_size
from shiftwatch.detectors.two_sample import TwoSampleDetector, as_context, as_matrix
from shiftwatch.detectors.univariate import Correction, adjust, global_p_value, ks_columns
from shiftwatch.errors import Invalid

# Rows of float32 softmax outputs sum to 1 within about 1e-6; 1e-3 also admits rounded exports.
SUM_TOLERANCE = 1e-3


def as_probabilities(values: Any, field: str, classes: int | None = None) -> np.ndarray:
    """A (n, k) array of class probabilities (rows in [0, 1] summing to 1), or ``Invalid``."""
    probs = as_matrix(values, field, dims=classes)
    if probs.shape[1] < 2:
        raise Invalid(field, "needs at least 2 classes (columns) of probabilities")
    if probs.min() < -1e-6 or probs.max() > 1 + 1e-6:
        raise Invalid(field, "probabilities must lie in [0, 1]")
    if np.abs(probs.sum(axis=1) - 1.0).max() > SUM_TOLERANCE:
        raise Invalid(field, "each row must sum to 1 (class probabilities, not logits)")
    return probs


def stream_context(context: dict[str, Any], n: int) -> tuple[Any, Any]:
    return (
        as_context(context.get("stream_ids"), n, "stream_ids"),
        as_context(context.get("timestamps"), n, "timestamps"),
    )


def n_effective(series: np.ndarray, streams: tuple[Any, Any]) -> float | None:
    if streams[0] is None and streams[1] is None:
        return None
    return effective_sample_size(series, *streams)


class _OutputDetector(TwoSampleDetector):
    """Shared fit for the BBSD tests: keep the reference probabilities and their effective size."""

    def __init__(self, alpha: float = 0.05, min_effect_size: float = 1.0, seed: int = 0) -> None:
        self.alpha = alpha
        self.min_effect_size = min_effect_size
        self.seed = seed

    def series(self, probs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, reference: np.ndarray, **context: Any) -> "_OutputDetector":
        self.reference_ = as_probabilities(reference, "reference")
        n_eff = n_effective(self.series(self.reference_), stream_context(context, len(self.reference_)))
        self.reference_n_eff_ = float(len(self.reference_) if n_eff is None else n_eff)
        return self

    def current(self, current: np.ndarray, context: dict[str, Any]) -> tuple[np.ndarray, float | None]:
        self.check_fitted()
        probs = as_probabilities(current, "current", classes=self.reference_.shape[1])
        return probs, n_effective(self.series(probs), stream_context(context, len(probs)))

    def result(self, probs: np.ndarray, statistic: float, p_value: float, effect: float, unit: str, evidence: dict[str, Any]) -> DriftResult:
        return DriftResult(
            method=self.name,
            statistic=statistic,
            p_value=p_value,
            threshold=self.alpha,
            drift=self.decide(p_value, effect),
            n_reference=len(self.reference_),
            n_current=len(probs),
            effect_size=effect,
            effect_unit=unit,
            evidence=evidence,
        )


class ConfidenceKSDetector(_OutputDetector):
    """KS on top-class confidence; effect = shift in mean confidence, percentage points."""

    name = "bbsd_confidence"

    def series(self, probs: np.ndarray) -> np.ndarray:
        return probs.max(axis=1)

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        probs, n_eff = self.current(current, context)
        ref_conf, cur_conf = self.series(self.reference_), self.series(probs)
        dependent = n_eff is not None or self.reference_n_eff_ < len(self.reference_)
        distance, p_value = ks_columns(
            ref_conf[:, None],
            cur_conf[:, None],
            np.array([self.reference_n_eff_]) if dependent else None,
            np.array([len(probs) if n_eff is None else n_eff]) if dependent else None,
        )
        shift = 100.0 * float(cur_conf.mean() - ref_conf.mean())
        return self.result(
            probs,
            float(distance[0]),
            float(p_value[0]),
            abs(shift),
            "points of mean confidence",
            {"mean_confidence_reference": float(ref_conf.mean()), "mean_confidence_current": float(cur_conf.mean()), "signed_shift_points": shift},
        )


class LabelShiftDetector(_OutputDetector):
    """Chi-squared on predicted-class counts (label shift); effect = total variation of the class shares, points."""

    name = "bbsd_label"

    def series(self, probs: np.ndarray) -> np.ndarray:
        return np.eye(probs.shape[1])[probs.argmax(axis=1)]

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        probs, n_eff = self.current(current, context)
        k = self.reference_.shape[1]
        counts = np.stack(
            [np.bincount(self.reference_.argmax(axis=1), minlength=k), np.bincount(probs.argmax(axis=1), minlength=k)]
        ).astype(np.float64)
        seen = counts.sum(axis=0) > 0
        if seen.sum() < 2:
            chi2, p_value = 0.0, 1.0
        else:
            chi2 = float(stats.chi2_contingency(counts[:, seen], correction=False)[0])
            design_effect = max(len(self.reference_) / self.reference_n_eff_, 1.0 if n_eff is None else len(probs) / n_eff)
            chi2 /= design_effect
            p_value = float(stats.chi2.sf(chi2, int(seen.sum()) - 1))
        shares = counts / counts.sum(axis=1, keepdims=True)
        moved = shares[1] - shares[0]
        effect = 50.0 * float(np.abs(moved).sum())
        return self.result(
            probs,
            chi2,
            p_value,
            effect,
            "points of predicted-class share moved (total variation)",
            {
                "share_reference": [float(v) for v in shares[0]],
                "share_current": [float(v) for v in shares[1]],
                "most_changed_classes": [int(i) for i in np.argsort(-np.abs(moved))[:3]],
            },
        )


class ClassProbabilityKSDetector(_OutputDetector):
    """KS on each class probability, aggregated (BH-FDR or Bonferroni); effect = largest CDF gap, points."""

    name = "bbsd_probs"

    def __init__(self, alpha: float = 0.05, min_effect_size: float = 5.0, correction: Correction = "fdr", seed: int = 0) -> None:
        super().__init__(alpha=alpha, min_effect_size=min_effect_size, seed=seed)
        self.correction = correction

    def series(self, probs: np.ndarray) -> np.ndarray:
        return probs

    def fit(self, reference: np.ndarray, **context: Any) -> "ClassProbabilityKSDetector":
        self.reference_ = as_probabilities(reference, "reference")
        streams = stream_context(context, len(self.reference_))
        self.reference_n_eff_ = np.array(
            [n_effective(column, streams) or float(len(self.reference_)) for column in self.reference_.T]
        )
        return self

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        self.check_fitted()
        probs = as_probabilities(current, "current", classes=self.reference_.shape[1])
        streams = stream_context(context, len(probs))
        n_eff = None if streams == (None, None) else np.array([n_effective(c, streams) for c in probs.T])
        dependent = n_eff is not None or bool(np.any(self.reference_n_eff_ < len(self.reference_)))
        distance, p_values = ks_columns(self.reference_, probs, self.reference_n_eff_ if dependent else None, n_eff)
        adjusted = adjust(p_values, self.correction)
        ranked = np.argsort(-distance)[:3]
        return self.result(
            probs,
            float(distance.max()),
            global_p_value(p_values, self.correction),
            100.0 * float(distance.max()),
            "max CDF gap over class probabilities, percentage points",
            {"most_shifted_classes": [{"class": int(i), "ks_distance": float(distance[i]), "p_adjusted": float(adjusted[i])} for i in ranked]},
        )


class BBSDDetector(TwoSampleDetector):
    """All three BBSD tests, Bonferroni-combined; reports the most significant one's effect."""

    name = "bbsd"
    PARTS = (ConfidenceKSDetector, LabelShiftDetector, ClassProbabilityKSDetector)

    def __init__(self, alpha: float = 0.05, min_effect_size: float | None = None, seed: int = 0) -> None:
        self.alpha = alpha
        self.min_effect_size = min_effect_size  # None: each part's own default (their units differ)
        self.seed = seed

    def _parts(self) -> list[TwoSampleDetector]:
        extra = {} if self.min_effect_size is None else {"min_effect_size": self.min_effect_size}
        return [part(alpha=self.alpha / len(self.PARTS), seed=self.seed, **extra) for part in self.PARTS]

    def fit(self, reference: np.ndarray, **context: Any) -> "BBSDDetector":
        self.reference_ = as_probabilities(reference, "reference")
        self._fitted = [part.fit(self.reference_, **context) for part in self._parts()]
        return self

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        self.check_fitted()
        if not hasattr(self, "_fitted"):
            self.fit(self.reference_)
        results = [part.test(current, **context) for part in self._fitted]
        best = min(results, key=lambda r: r.p_value if r.p_value is not None else 1.0)
        p_value = min(1.0, len(results) * float(best.p_value or 1.0))
        return DriftResult(
            method=self.name,
            statistic=best.statistic,
            p_value=p_value,
            threshold=self.alpha,
            drift=any(r.drift for r in results),
            n_reference=best.n_reference,
            n_current=best.n_current,
            effect_size=best.effect_size,
            effect_unit=f"{best.method}: {best.effect_unit}",
            evidence={r.method: {"p_value": r.p_value, "statistic": r.statistic, "effect_size": r.effect_size, "drift": r.drift, **r.evidence} for r in results},
        )
