"""95% confidence intervals for the approver: a rate (Clopper-Pearson), a difference of rates (Newcombe), means and quantiles.

The approval page shows candidate - production with an interval, so "1.000 vs 1.000 on 14
labels" reads as "+0.000 [-0.23, +0.23]": the data cannot tell the two apart yet. A rate's interval
is the one every labeled accuracy in the product gets (``detectors.intervals.proportion_interval``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from shiftwatch.detectors.intervals import PROPORTION_METHOD, difference_interval, proportion_interval

Z95 = float(norm.ppf(0.975))
# 400 resamples per interval: a few tenths of a second of CPU per tick at most (two latency quantiles);
# tests/rollout/test_intervals.py checks the coverage this gives.
BOOTSTRAP_RESAMPLES = 400
# A fixed seed: the same rows give the same interval on every page load and in the audit log.
BOOTSTRAP_SEED = 0
# Rows per arm the bootstrap resamples (a uniform subsample beyond that): bounds a tick's time and memory.
BOOTSTRAP_MAX_ROWS = 5000


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with its 95% interval and the method that made it."""

    estimate: float
    low: float
    high: float
    method: str

    def to_dict(self) -> dict[str, float | str]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "method": self.method}


def rate(hits: int, n: int) -> Interval | None:
    """A proportion with its exact (Clopper-Pearson) interval: sane at 0/n and n/n, where the normal one is a point."""
    if n <= 0:
        return None
    p = hits / n
    low, high = proportion_interval(hits, n)
    return Interval(p, min(p, low), max(p, high), PROPORTION_METHOD)


def newcombe_difference(hits_a: int, n_a: int, hits_b: int, n_b: int) -> Interval | None:
    """Newcombe's hybrid interval (square-and-add, method 10's construction) of p_a - p_b from each arm's ``rate``.

    For paired samples (shadow) it treats the arms as independent; positively correlated
    correctness makes the true interval narrower, so this errs on the wide side.
    """
    a, b = rate(hits_a, n_a), rate(hits_b, n_b)
    if a is None or b is None:
        return None
    diff, low, high = difference_interval((a.estimate, a.low, a.high), (b.estimate, b.low, b.high))
    return Interval(diff, low, high, "newcombe")


def mean_difference(a: np.ndarray, b: np.ndarray) -> Interval | None:
    """mean(a) - mean(b) with a normal (Welch) interval: fine for the hundreds of rows a step holds."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return None
    diff = float(a.mean() - b.mean())
    half = Z95 * math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return Interval(diff, diff - half, diff + half, "normal")


def quantile_difference(a: np.ndarray, b: np.ndarray, q: float) -> Interval | None:
    """q-th percentile of a minus that of b, with a percentile-bootstrap interval (fixed seed)."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    a, b = (_subsample(rng, x) for x in (a, b))
    diff = float(np.percentile(a, q) - np.percentile(b, q))
    draws = np.empty(BOOTSTRAP_RESAMPLES)
    for i in range(BOOTSTRAP_RESAMPLES):
        draws[i] = np.percentile(rng.choice(a, a.size), q) - np.percentile(rng.choice(b, b.size), q)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Interval(diff, float(low), float(high), "bootstrap")


def _subsample(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    return values if values.size <= BOOTSTRAP_MAX_ROWS else rng.choice(values, BOOTSTRAP_MAX_ROWS, replace=False)
