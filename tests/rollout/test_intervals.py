"""The approval page's 95% intervals: published values, and coverage over many seeded trials."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from shiftwatch.rollout.intervals import mean_difference, newcombe_difference, quantile_difference, rate


def test_rate_is_the_exact_binomial_interval_and_stays_inside_zero_one() -> None:
    # Newcombe (1998), Table I, method 5 (exact): 0/10 -> 0 to 0.3085; 81/263 -> 0.2527 to 0.3676.
    assert rate(0, 10).low == 0.0 and rate(0, 10).high == pytest.approx(0.3085, abs=1e-4)
    interval = rate(81, 263)
    assert (interval.low, interval.high) == (pytest.approx(0.2527, abs=1e-4), pytest.approx(0.3676, abs=1e-4))
    assert interval.method == "clopper_pearson"
    assert rate(0, 0) is None
    for n in range(1, 200):  # scipy's exact interval, and the estimate inside it, even at 0/n and n/n
        for hits in (0, n // 3, n):
            interval = rate(hits, n)
            exact = binomtest(hits, n).proportion_ci(method="exact")
            assert (interval.low, interval.high) == (pytest.approx(exact.low, abs=1e-9), pytest.approx(exact.high, abs=1e-9))
            assert interval.low <= interval.estimate <= interval.high


def test_newcombe_squares_and_adds_each_arms_exact_interval() -> None:
    # Newcombe (1998b)'s example 56/70 - 48/80 = 0.2000 (0.0524 to 0.3339 from Wilson arms): exact arms are wider.
    interval = newcombe_difference(56, 70, 48, 80)
    a, b = rate(56, 70), rate(48, 80)
    assert interval.estimate == pytest.approx(0.2)
    assert interval.low == pytest.approx(0.2 - ((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2) ** 0.5)
    assert interval.high == pytest.approx(0.2 + ((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2) ** 0.5)
    assert interval.low < 0.0524 and interval.high > 0.3339


def test_equal_perfect_accuracy_on_14_labels_is_not_evidence_of_equality() -> None:
    """'1.000 vs 1.000 on 14 labels' reads as +0.000 with an interval about 21 points wide either side."""
    interval = newcombe_difference(14, 14, 14, 14)
    assert interval.estimate == 0.0 and interval.low < -0.15 and interval.high > 0.15


def test_newcombe_covers_the_true_difference_at_least_93_percent_of_the_time() -> None:
    rng = np.random.default_rng(17)
    covered, trials = 0, 2000
    for _ in range(trials):
        hits_a, hits_b = rng.binomial(40, 0.9), rng.binomial(60, 0.85)
        interval = newcombe_difference(int(hits_a), 40, int(hits_b), 60)
        covered += interval.low <= 0.05 <= interval.high
    assert covered / trials >= 0.93, covered / trials  # nominal 95%


def test_mean_and_quantile_differences_cover_a_known_shift() -> None:
    rng = np.random.default_rng(3)
    mean_hits = quantile_hits = 0
    trials = 100
    for _ in range(trials):
        production = rng.gamma(2.0, 2.0, 400)
        candidate = rng.gamma(2.0, 2.0, 400) + 1.5  # 1.5 ms slower everywhere: every quantile moves by 1.5
        mean = mean_difference(candidate, production)
        median = quantile_difference(candidate, production, 50)
        mean_hits += mean.low <= 1.5 <= mean.high
        quantile_hits += median.low <= 1.5 <= median.high
        assert median.low > 0.3  # the shift is seen, not only covered
    assert mean_hits / trials >= 0.88 and quantile_hits / trials >= 0.85, (mean_hits, quantile_hits)


def test_quantile_difference_ignores_missing_latencies_and_needs_two_per_arm() -> None:
    values = np.array([1.0, 2.0, np.nan, 3.0])
    assert quantile_difference(values, values, 99).estimate == 0.0
    assert quantile_difference(np.array([1.0]), values, 50) is None
