"""The approval page's 95% intervals: published values, and coverage over many seeded trials."""

from __future__ import annotations

import numpy as np
import pytest

from shiftwatch.rollout.intervals import mean_difference, newcombe_difference, quantile_difference, wilson


def test_wilson_matches_published_values_and_stays_inside_zero_one() -> None:
    # Newcombe (1998), Table I: 0/10 -> 0 to 0.2775; 81/263 -> 0.2553 to 0.3662.
    assert wilson(0, 10).low == 0.0 and wilson(0, 10).high == pytest.approx(0.2775, abs=1e-4)
    interval = wilson(81, 263)
    assert (interval.low, interval.high) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    assert wilson(0, 0) is None
    for n in range(1, 200):  # the estimate is inside its own interval, even at 0/n and n/n
        for hits in (0, n // 3, n):
            interval = wilson(hits, n)
            assert interval.low <= interval.estimate <= interval.high


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998b), method 10: 56/70 - 48/80 = 0.2000, 95% CI 0.0524 to 0.3339.
    interval = newcombe_difference(56, 70, 48, 80)
    assert interval.estimate == pytest.approx(0.2)
    assert (interval.low, interval.high) == (pytest.approx(0.0524, abs=1e-4), pytest.approx(0.3339, abs=1e-4))


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
