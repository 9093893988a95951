"""Black-box shift detection on model outputs: confidences (KS), predicted-class counts (chi-squared), class probabilities (KS).

Works on (n, k) class-probability arrays only, so it needs no access to the model or its
embeddings. Correlated streams (stream ids / timestamps given): every p-value comes from a
block permutation test (see ``dependence``); the KS distances and chi-squared statistics of
all B permutations come from one (N, 1 + B) indicator matrix. An effective-sample-size
correction (n / tau, Rao-Scott for chi-squared) fired on 51 % of quiet windows of the digits
camera bench, where the predicted class stays fixed for a whole scene. ``BBSDDetector`` runs
all three and combines them with Bonferroni (p = min(1, 3 * smallest p)).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from shiftwatch.detectors.base import DriftResult
from shiftwatch.detectors.dependence import block_ids
from shiftwatch.detectors.permutation import permutation_p_value
from shiftwatch.detectors.two_sample import CombinedDetector, TwoSampleDetector, as_context, as_matrix
from shiftwatch.detectors.univariate import (
    Correction,
    adjust,
    global_p_value,
    group_indicators,
    ks_block_permutation,
    ks_columns,
)
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


def stream_blocks(probs: np.ndarray, context: dict[str, Any]) -> np.ndarray:
    return block_ids(
        probs,
        as_context(context.get("stream_ids"), len(probs), "stream_ids"),
        as_context(context.get("timestamps"), len(probs), "timestamps"),
    )


def is_dependent(*blocks: np.ndarray) -> bool:
    return any(len(np.unique(b)) < len(b) for b in blocks)


def chi_squared(counts_reference: np.ndarray, counts_current: np.ndarray) -> np.ndarray:
    """Pearson chi-squared of the 2 x k tables given column-wise, (k, B) each; classes never seen are skipped."""
    totals = counts_reference + counts_current
    seen = totals > 0
    n_ref = counts_reference.sum(axis=0)
    n_cur = counts_current.sum(axis=0)
    n = n_ref + n_cur
    expected_ref = np.where(seen, totals * n_ref / n, 1.0)
    expected_cur = np.where(seen, totals * n_cur / n, 1.0)
    return (
        np.where(seen, (counts_reference - expected_ref) ** 2 / expected_ref, 0.0).sum(axis=0)
        + np.where(seen, (counts_current - expected_cur) ** 2 / expected_cur, 0.0).sum(axis=0)
    )


class _OutputDetector(TwoSampleDetector):
    """Shared parts of the BBSD tests: the reference probabilities and their stream blocks."""

    input_kind = "probabilities"

    def __init__(self, alpha: float = 0.05, min_effect_size: float = 1.0, n_permutations: int = 500, seed: int = 0) -> None:
        self.alpha = alpha
        self.min_effect_size = min_effect_size
        self.n_permutations = n_permutations  # streams only
        self.seed = seed

    def fit(self, reference: np.ndarray, **context: Any) -> _OutputDetector:
        self.reference_ = as_probabilities(reference, "reference")
        self.reference_blocks_ = stream_blocks(self.reference_, context)
        return self

    def current(self, current: np.ndarray, context: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """The current probabilities, and their blocks when either window is a correlated stream (else None)."""
        self.check_fitted()
        probs = as_probabilities(current, "current", classes=self.reference_.shape[1])
        blocks = stream_blocks(probs, context)
        return probs, (blocks if is_dependent(blocks, self.reference_blocks_) else None)

    def ks(
        self, reference: np.ndarray, current: np.ndarray, blocks: np.ndarray | None, correction: Correction = "bonferroni"
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Per-column KS distances and p-values, and the global p-value (max-statistic on streams)."""
        if blocks is None:
            distance, p_values = ks_columns(reference, current)
            return distance, p_values, global_p_value(p_values, correction)
        rng = np.random.default_rng(self.seed + 1)
        return ks_block_permutation(reference, current, self.reference_blocks_, blocks, self.n_permutations, rng)

    def result(self, probs: np.ndarray, statistic: float, p_value: float, effect: float, unit: str, evidence: dict[str, Any]) -> DriftResult:
        return DriftResult(
            method=self.name,
            statistic=statistic,
            p_value=p_value,
            threshold=self.alpha,
            **self.decide(p_value, effect, len(self.reference_), len(probs)).fields(),
            n_reference=len(self.reference_),
            n_current=len(probs),
            effect_size=effect,
            effect_unit=unit,
            evidence=evidence,
        )


class BBSDConfidenceDetector(_OutputDetector):
    """KS on top-class confidence; effect = shift in mean confidence, percentage points."""

    name = "bbsd_confidence"

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        probs, blocks = self.current(current, context)
        ref_conf, cur_conf = self.reference_.max(axis=1), probs.max(axis=1)
        distance, p_value, _ = self.ks(ref_conf[:, None], cur_conf[:, None], blocks)
        shift = 100.0 * float(cur_conf.mean() - ref_conf.mean())
        return self.result(
            probs,
            float(distance[0]),
            float(p_value[0]),
            abs(shift),
            "points of mean confidence",
            {"mean_confidence_reference": float(ref_conf.mean()), "mean_confidence_current": float(cur_conf.mean()), "signed_shift_points": shift},
        )


class BBSDLabelDetector(_OutputDetector):
    """Chi-squared on predicted-class counts (label shift); effect = total variation of the class shares, points."""

    name = "bbsd_label"

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        probs, blocks = self.current(current, context)
        k = self.reference_.shape[1]
        predicted = np.r_[self.reference_.argmax(axis=1), probs.argmax(axis=1)]
        counts = np.stack([np.bincount(predicted[: len(self.reference_)], minlength=k), np.bincount(predicted[len(self.reference_) :], minlength=k)]).astype(np.float64)
        seen = counts.sum(axis=0) > 0
        chi2 = float(chi_squared(counts[0][:, None], counts[1][:, None])[0])
        if seen.sum() < 2:
            p_value = 1.0
        elif blocks is None:
            p_value = float(stats.chi2.sf(chi2, int(seen.sum()) - 1))
        else:
            indicators = group_indicators(self.reference_blocks_, blocks, self.n_permutations, np.random.default_rng(self.seed + 1))
            one_hot = np.eye(k)[predicted]
            in_reference = one_hot.T @ indicators
            permuted = chi_squared(in_reference, one_hot.sum(axis=0)[:, None] - in_reference)
            p_value = permutation_p_value(float(permuted[0]), permuted[1:])
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


class BBSDProbsDetector(_OutputDetector):
    """KS on each class probability, aggregated (BH-FDR or Bonferroni); effect = largest CDF gap, points."""

    name = "bbsd_probs"

    def __init__(
        self, alpha: float = 0.05, min_effect_size: float = 5.0, correction: Correction = "fdr", n_permutations: int = 500, seed: int = 0
    ) -> None:
        super().__init__(alpha=alpha, min_effect_size=min_effect_size, n_permutations=n_permutations, seed=seed)
        self.correction = correction

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        probs, blocks = self.current(current, context)
        distance, p_values, p_value = self.ks(self.reference_, probs, blocks, self.correction)
        adjusted = adjust(p_values, self.correction)
        ranked = np.argsort(-distance)[:3]
        return self.result(
            probs,
            float(distance.max()),
            p_value,
            100.0 * float(distance.max()),
            "max CDF gap over class probabilities, percentage points",
            {"most_shifted_classes": [{"class": int(i), "ks_distance": float(distance[i]), "p_adjusted": float(adjusted[i])} for i in ranked]},
        )


class BBSDDetector(CombinedDetector):
    """All three BBSD tests, Bonferroni-combined; reports the most significant one's effect."""

    name = "bbsd"
    input_kind = "probabilities"
    PARTS = (BBSDConfidenceDetector, BBSDLabelDetector, BBSDProbsDetector)

    def __init__(self, alpha: float = 0.05, min_effect_size: float | None = None, n_permutations: int = 500, seed: int = 0) -> None:
        self.alpha = alpha
        self.min_effect_size = min_effect_size  # type: ignore[assignment]  # None: each part's own default (their units differ)
        self.n_permutations = n_permutations
        self.seed = seed

    def _parts(self) -> list[TwoSampleDetector]:
        extra: dict[str, Any] = {} if self.min_effect_size is None else {"min_effect_size": self.min_effect_size}
        return [
            part(alpha=self.alpha / len(self.PARTS), n_permutations=self.n_permutations, seed=self.seed, **extra)
            for part in self.PARTS
        ]

    def fit(self, reference: np.ndarray, **context: Any) -> BBSDDetector:
        self.reference_ = as_probabilities(reference, "reference")
        self.reference_blocks_ = stream_blocks(self.reference_, context)
        self._fit_parts()
        return self

    def _fit_parts(self) -> None:
        self._fitted = [part.fit(self.reference_) for part in self._parts()]
        for part in self._fitted:
            part.reference_blocks_ = self.reference_blocks_  # type: ignore[attr-defined]  # set by fit on every TwoSampleDetector, not declared on the class
