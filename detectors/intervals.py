"""Accuracy intervals that hold whatever the shift, and at 0 and 100 %: one construction for every labeled rate.

A labeled accuracy or error rate is a binomial proportion. Its interval here is always
Clopper-Pearson (the exact binomial interval): it keeps its coverage where the normal
approximation collapses, at a slice that is all right or all wrong (issue 29: at 99 % accuracy
100 random labels are all right a third of the time, and estimate ± z·sd gave ``[1.0, 1.0]``).

A label-free estimate (CBPE, ATC) is only as good as its assumption that P(correct | score)
did not move; where it did no label-free method can know, and its interval covers nothing.
The product has labels anyway: the labeling queue's *random* slice of the window. PPI++
(Angelopoulos et al. 2023, 2024) combines both: the per-sample predicted correctness ``f``
on the whole unlabeled window, corrected by the mean error ``y - f`` on the labeled slice,
with ``lambda = cov(y, f) / ((1 + n/N) var(f))``. The correction is unbiased whatever the
shift, so the estimate is valid; ``f`` only buys width. Its interval is Clopper-Pearson at the
*effective* sample size (Korn & Graubard 1998, the survey statisticians' interval for a
proportion under a design effect): ``n_eff = n · var(labels alone) / var(PPI++)``. At a slice
that is all right or all wrong ``cov(y, f) = 0`` makes lambda 0, and the interval is the labels'
own exact interval, never a point. bench/intervals_boundary.py measures the coverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from shiftwatch.errors import Invalid

# Fewer labels than this: the variance of the slice's mean error, which sets n_eff, is not trusted.
MIN_LABELS = 20
PROPORTION_METHOD = "clopper_pearson"
POWERED_METHOD = "ppi++, clopper_pearson at the effective sample size"


def proportion_interval(successes: float, trials: float, confidence_level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a proportion; ``trials`` may be an effective (non-integer) sample size.

    The one interval of a labeled accuracy or error rate (CLI, alerts, console, rollout). Beta
    quantiles: at integer counts it is scipy's ``binomtest(k, n).proportion_ci(method="exact")``.
    """
    if trials <= 0:
        raise Invalid("trials", f"must be positive, got {trials}")
    k = min(max(float(successes), 0.0), float(trials))
    tail = (1.0 - confidence_level) / 2.0
    low = 0.0 if k <= 0 else float(stats.beta.ppf(tail, k, trials - k + 1))
    high = 1.0 if k >= trials else float(stats.beta.ppf(1.0 - tail, k + 1, trials - k))
    return low, high


def difference_interval(
    a: tuple[float, float, float], b: tuple[float, float, float]
) -> tuple[float, float, float]:
    """``a - b`` from two (estimate, low, high) intervals by Newcombe's square-and-add (MOVER): the rollout's
    candidate - production accuracy, an alert's reference - current accuracy. Independent arms assumed."""
    (pa, la, ha), (pb, lb, hb) = a, b
    diff = pa - pb
    low = diff - float(np.hypot(pa - la, hb - pb))
    high = diff + float(np.hypot(ha - pa, pb - lb))
    return diff, max(-1.0, low), min(1.0, high)


def labels_to_settle(accuracy: float, half_width: float = 0.05, confidence_level: float = 0.95) -> int:
    """Random-slice labels whose exact interval at ``accuracy`` is at most ``half_width`` either side (the ask an alert makes)."""
    def wide(n: int) -> bool:
        low, high = proportion_interval(accuracy * n, n, confidence_level)
        return max(accuracy - low, high - accuracy) > half_width

    low_n, high_n = 1, 1
    while wide(high_n) and high_n < 1_000_000:
        low_n, high_n = high_n, high_n * 2
    while low_n < high_n:  # the smallest n that is not too wide (width shrinks with n)
        middle = (low_n + high_n) // 2
        low_n, high_n = (middle + 1, high_n) if wide(middle) else (low_n, middle)
    return high_n


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
    n_effective: float  # the labels the estimate is worth: n / (its variance over the labels' alone)
    source: str = "prediction_powered"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "method": WEIGHTED_METHOD if self.source == "weighted_draw" else POWERED_METHOD if self.tuning > 0 else PROPORTION_METHOD,
            "estimated_accuracy": self.estimate,
            "interval": list(self.interval),
            "labels_only_accuracy": self.labels_only_estimate,
            "labels_only_interval": list(self.labels_only_interval),
            "labels_only_method": PROPORTION_METHOD,
            "confidence_level": self.confidence_level,
            "n_labeled": self.n_labeled,
            "n_unlabeled": self.n_unlabeled,
            "n_effective": self.n_effective,
            "tuning": self.tuning,
        }


def _check_labels(n_labeled: int, y: np.ndarray, field: str, source: str) -> None:
    """One outcome per labeled prediction, and at least MIN_LABELS of them (fewer: the variance is not trusted)."""
    if n_labeled != len(y):
        raise Invalid(field, f"has {len(y)} labels for {n_labeled} labeled predictions")
    if len(y) < MIN_LABELS:
        raise Invalid(field, f"needs at least {MIN_LABELS} labels of {source}, got {len(y)}")


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
    _check_labels(len(f_labeled), y, "slice_labels", "the random slice")
    if len(f_unlabeled) < 2:
        raise Invalid("current", "needs at least 2 unlabeled predictions")
    n, big_n = len(y), len(f_unlabeled)
    labels_only = float(y.mean())
    labels_interval = proportion_interval(y.sum(), n, confidence_level)
    spread = float(np.concatenate([f_unlabeled, f_labeled]).var(ddof=1))
    covariance = float(np.cov(y, f_labeled, ddof=1)[0, 1])
    tuning = 0.0 if spread <= 1e-12 else float(np.clip(covariance / ((1.0 + n / big_n) * spread), 0.0, 1.0))
    variance = tuning**2 * float(f_unlabeled.var(ddof=1)) / big_n + float((y - tuning * f_labeled).var(ddof=1)) / n
    labels_variance = float(y.var(ddof=1)) / n
    if tuning == 0.0 or variance >= labels_variance:
        # f buys nothing here (or the slice is all right / all wrong): the labels' own exact interval.
        tuning, estimate, interval, n_effective = 0.0, labels_only, labels_interval, float(n)
    else:
        estimate = float(np.clip(y.mean() + tuning * (f_unlabeled.mean() - f_labeled.mean()), 0.0, 1.0))
        # Never worth more than the whole window labeled (and no division by a variance of 0).
        n_effective = min(n * labels_variance / max(variance, 1e-300), float(n + big_n))
        interval = proportion_interval(estimate * n_effective, n_effective, confidence_level)
    return PoweredInterval(
        estimate=estimate,
        interval=interval,
        labels_only_estimate=labels_only,
        labels_only_interval=labels_interval,
        confidence_level=confidence_level,
        n_labeled=n,
        n_unlabeled=big_n,
        tuning=tuning,
        n_effective=n_effective,
    )


WEIGHTED_METHOD = "difference estimator on a weighted draw, clopper_pearson at the effective sample size"
# Half of a weighted draw's probability is uniform: every row can be drawn, and a predictor that is wrong
# somewhere costs at most a factor of two in that region's weight (bench/accuracy_estimators.py: coverage).
UNIFORM_SHARE = 0.5


def weighted_draw(predicted: np.ndarray, size: float, uniform_share: float = UNIFORM_SHARE) -> np.ndarray:
    """Inclusion probabilities of a Poisson draw of about ``size`` rows: more where ``f``'s verdict is least sure.

    Neyman's allocation for a mean of 0/1 outcomes: a row's share grows with its outcome's standard
    deviation under ``f``, ``sqrt(f(1 - f))``; active inference (Zrnic & Candès 2024) draws labels this way.
    """
    f = np.clip(np.asarray(predicted, dtype=np.float64), 0.0, 1.0)
    spread = np.sqrt(np.clip(f * (1 - f), 1e-4, None))
    share = (1 - uniform_share) * spread / spread.sum() + uniform_share / len(f)
    return np.minimum(size * share, 1.0)


def weighted_accuracy(
    predicted: np.ndarray,
    inclusion: np.ndarray,
    labeled: np.ndarray,
    correct: np.ndarray,
    drawn: int,
    confidence_level: float = 0.95,
) -> PoweredInterval:
    """Accuracy of a window from a weighted draw: mean ``f`` over the window plus the inclusion-weighted mean error.

    ``predicted``: ``f`` on every row of the window; ``inclusion``: each row's draw probability;
    ``labeled``: the rows of the draw that have labels, ``correct`` their 0/1 outcomes; ``drawn``: how
    many the draw took. Labels missing from the draw are taken as missing at random (the response
    rate scales every inclusion probability). Unbiased whatever ``f`` is (Horvitz-Thompson on ``y - f``);
    ``f`` only buys width. The interval is Clopper-Pearson at the effective sample size, as PPI++'s.
    """
    f = np.asarray(predicted, dtype=np.float64)
    rows = np.asarray(labeled, dtype=np.int64)
    y = np.asarray(correct, dtype=np.float64)
    _check_labels(len(rows), y, "labels", "the draw")
    big_n = len(f)
    p = np.clip(np.asarray(inclusion, dtype=np.float64)[rows] * len(y) / max(drawn, len(y)), 1e-9, 1.0)

    def estimate(values: np.ndarray, offset: float) -> tuple[float, float]:
        point = float(np.clip(offset + np.sum(values / p) / big_n, 0.0, 1.0))
        variance = float(np.sum((1 - p) / p**2 * values**2)) / big_n**2
        return point, variance

    def interval(point: float, variance: float) -> tuple[float, float, float]:
        n_effective = float(big_n) if variance <= 0 else min(point * (1 - point) / variance, float(big_n))
        n_effective = max(n_effective, 1.0)
        return (*proportion_interval(point * n_effective, n_effective, confidence_level), n_effective)

    point, variance = estimate(y - f[rows], float(f.mean()))
    low, high, n_effective = interval(point, variance)
    alone, alone_variance = estimate(y, 0.0)
    alone_low, alone_high, _ = interval(alone, alone_variance)
    return PoweredInterval(
        estimate=point, interval=(low, high), labels_only_estimate=alone, labels_only_interval=(alone_low, alone_high),
        confidence_level=confidence_level, n_labeled=len(y), n_unlabeled=big_n - len(y), tuning=1.0,
        n_effective=n_effective, source="weighted_draw",
    )
