"""Labeled accuracy intervals (issues 29, 24): they hold near 100 % and whatever the predictor, and are never a point,
over many seeded windows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from shiftwatch.detectors.intervals import (
    labels_to_settle,
    prediction_powered_accuracy,
    proportion_interval,
    weighted_accuracy,
    weighted_draw,
)
from shiftwatch.detectors.labeled_windows import Cell, run
from shiftwatch.errors import Invalid


@pytest.mark.parametrize(
    "cell",
    [
        Cell(accuracy=0.99, n_labeled=100, n_window=2000),  # the case: 1 in 3 slices all right
        Cell(accuracy=0.999, n_labeled=30, n_window=300),
        Cell(accuracy=0.999, n_labeled=400, n_window=2000),  # 1-3 errors in the slice: where Wilson dips to 0.91
        Cell(accuracy=0.99, n_labeled=30, n_window=2000, label_free="overconfident"),
    ],
    ids=lambda cell: f"{cell.accuracy}-{cell.n_labeled}of{cell.n_window}-{cell.label_free}",
)
def test_intervals_cover_the_windows_accuracy_near_100_percent_and_are_never_a_point(cell: Cell) -> None:
    coverage = run(cell)  # 400 seeded windows
    # Nominal 95 %: Binomial(400, 0.95) falls below 372 (0.93) with probability about 0.5 %; measured 0.96-1.00.
    assert coverage.powered_coverage >= 0.93, coverage
    assert coverage.labels_coverage >= 0.93, coverage
    assert coverage.powered_zero_width == 0 and coverage.labels_zero_width == 0, coverage


def test_an_all_right_slice_gives_the_labels_exact_interval_not_a_point() -> None:
    rng = np.random.default_rng(4)
    predicted = rng.uniform(0.9, 1.0, 2100)  # the label-free estimate says "about 95 %"
    powered = prediction_powered_accuracy(predicted[100:], predicted[:100], np.ones(100))
    assert powered.estimate == 1.0 and powered.tuning == 0.0
    exact = binomtest(100, 100).proportion_ci(method="exact")
    assert powered.interval == pytest.approx((exact.low, 1.0)) == powered.labels_only_interval
    assert powered.interval[0] < 0.97  # 100 of 100 right cannot rule out 97 %
    assert powered.to_dict()["method"] == "clopper_pearson"


def test_proportion_interval_is_the_exact_binomial_interval_and_takes_an_effective_sample_size() -> None:
    for hits, n in ((0, 30), (1, 100), (57, 100), (399, 400), (400, 400)):
        exact = binomtest(hits, n).proportion_ci(method="exact")
        assert proportion_interval(hits, n) == (pytest.approx(exact.low, abs=1e-9), pytest.approx(exact.high, abs=1e-9))
    narrow, wide = proportion_interval(0.9 * 250.5, 250.5), proportion_interval(0.9 * 100, 100)
    assert wide[0] < narrow[0] < 0.9 < narrow[1] < wide[1]  # more effective labels, a narrower interval


def test_labels_to_settle_is_the_fewest_labels_whose_exact_interval_is_within_5_points() -> None:
    def half(p: float, n: int) -> float:
        low, high = proportion_interval(p * n, n)
        return max(p - low, high - p)

    for accuracy in (0.5, 0.9, 0.99):
        n = labels_to_settle(accuracy)
        assert half(accuracy, n) <= 0.05 < half(accuracy, n - 1)
    assert labels_to_settle(0.5) > labels_to_settle(0.9) > labels_to_settle(0.99)  # fewer near the boundary


def _weighted_windows(miscalibrated: bool, trials: int = 400) -> tuple[float, float, int]:
    """Coverage of the weighted draw's interval, its mean width over 100 uniform labels' exact one, and zero widths."""
    held, ratios, points = [], [], 0
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        f = np.where(rng.random(500) < 0.8, rng.beta(60, 1, 500), rng.uniform(0.4, 0.95, 500))  # mostly sure
        truth_p = np.where(f < 0.9, 0.5 * f, f) if miscalibrated else f  # the unsure rows far worse than f says
        y = (rng.random(500) < truth_p).astype(float)
        inclusion = weighted_draw(f, 100)
        drawn = np.flatnonzero(rng.random(500) < inclusion)
        measured = weighted_accuracy(f, inclusion, drawn, y[drawn], len(drawn))
        low, high = measured.interval
        held.append(low <= y.mean() <= high)
        points += high - low <= 0
        uniform = rng.choice(500, 100, replace=False)
        alone = proportion_interval(y[uniform].sum(), 100)
        ratios.append((high - low) / (alone[1] - alone[0]))
    return float(np.mean(held)), float(np.mean(ratios)), points


def test_a_weighted_draw_covers_whatever_the_predictor_and_is_far_narrower_where_it_is_calibrated() -> None:
    covered, ratio, points = _weighted_windows(miscalibrated=False)
    assert covered >= 0.93 and points == 0, (covered, points)
    assert ratio <= 0.75, ratio  # the goal: >= 25 % narrower than 100 uniform labels (measured ~0.5)
    covered, _, points = _weighted_windows(miscalibrated=True)
    assert covered >= 0.93 and points == 0, covered  # unbiased whatever f says: f only buys width


def test_a_weighted_draw_refuses_too_few_labels_by_name() -> None:
    with pytest.raises(Invalid, match="at least 20 labels"):
        weighted_accuracy(np.full(100, 0.9), np.full(100, 0.1), np.arange(5), np.ones(5), 5)
