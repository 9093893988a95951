"""Accuracy intervals that hold whatever the shift: prediction-powered inference on the labeled random slice.

A label-free estimate (CBPE, ATC) is only as good as its assumption that P(correct | score)
did not move; where it did (labels got noisier at unchanged confidence, a region where the
model is confidently wrong) no label-free method can know, and its interval covers nothing.
The product has labels anyway: the labeling queue's *random* slice of the window. PPI
(Angelopoulos et al. 2023; the power-tuned PPI++, 2024) combines both: the per-sample predicted
correctness ``f`` on the whole unlabeled window, corrected by the mean error ``y - f`` on the
labeled slice. The correction is unbiased whatever the shift (the slice is a uniform sample of
the same window), so the interval is valid; ``f`` only buys width: with lambda tuned to
``cov(y, f) / ((1 + n/N) var(f))`` the interval is never (asymptotically) wider than labels
alone and much narrower when ``f`` tracks correctness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from shiftwatch.errors import Invalid

# Fewer labels than this: the normal approximation of the slice's mean error is not trusted.
MIN_LABELS = 20


@dataclass(frozen=True, slots=True)
class PoweredInterval:
    """Accuracy (fraction) of the current window from predictions + the labeled slice, and labels alone."""

    estimate: float
    interval: tuple[float, float]
    labels_only_estimate: float
    labels_only_interval: tuple[float, float]
    confidence_level: float
    n_labeled: int
    n_unlabeled: int
    tuning: float  # lambda: 0 = labels alone, 1 = plain PPI
    source: str = "prediction_powered"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "estimated_accuracy": self.estimate,
            "interval": list(self.interval),
            "labels_only_accuracy": self.labels_only_estimate,
            "labels_only_interval": list(self.labels_only_interval),
            "confidence_level": self.confidence_level,
            "n_labeled": self.n_labeled,
            "n_unlabeled": self.n_unlabeled,
            "tuning": self.tuning,
        }


def _normal_interval(centre: float, variance: float, z: float) -> tuple[float, float]:
    half = z * float(np.sqrt(max(variance, 0.0)))
    return max(0.0, centre - half), min(1.0, centre + half)


def prediction_powered_accuracy(
    predicted_unlabeled: np.ndarray,
    predicted_labeled: np.ndarray,
    correct_labeled: np.ndarray,
    confidence_level: float = 0.95,
) -> PoweredInterval:
    """PPI++ mean of correctness: ``f`` on the unlabeled window, ``f`` and 0/1 ``correct`` on the random slice."""
    f_unlabeled = np.asarray(predicted_unlabeled, dtype=np.float64)
    f_labeled = np.asarray(predicted_labeled, dtype=np.float64)
    y = np.asarray(correct_labeled, dtype=np.float64)
    if len(f_labeled) != len(y):
        raise Invalid("slice_labels", f"has {len(y)} labels for {len(f_labeled)} labeled predictions")
    if len(y) < MIN_LABELS:
        raise Invalid("slice_labels", f"needs at least {MIN_LABELS} labels of the random slice, got {len(y)}")
    if len(f_unlabeled) < 2:
        raise Invalid("current", "needs at least 2 unlabeled predictions")
    n, big_n = len(y), len(f_unlabeled)
    z = float(stats.norm.ppf(0.5 + confidence_level / 2.0))
    pooled = np.concatenate([f_unlabeled, f_labeled])
    spread = float(pooled.var(ddof=1))
    covariance = float(np.cov(y, f_labeled, ddof=1)[0, 1]) if n > 1 else 0.0
    tuning = 0.0 if spread <= 1e-12 else float(np.clip(covariance / ((1.0 + n / big_n) * spread), 0.0, 1.0))
    estimate = float(y.mean() + tuning * (f_unlabeled.mean() - f_labeled.mean()))
    variance = tuning**2 * float(f_unlabeled.var(ddof=1)) / big_n + float((y - tuning * f_labeled).var(ddof=1)) / n
    labels_only = float(y.mean())
    return PoweredInterval(
        estimate=estimate,
        interval=_normal_interval(estimate, variance, z),
        labels_only_estimate=labels_only,
        labels_only_interval=_normal_interval(labels_only, float(y.var(ddof=1)) / n, z),
        confidence_level=confidence_level,
        n_labeled=n,
        n_unlabeled=big_n,
        tuning=tuning,
    )
