"""Synthetic windows with a labeled random slice and known accuracy: the cases of issue 29, for tests and bench/intervals_boundary.py.

Each prediction has its own chance of being right, ``q ~ Beta(2a, 2(1-a))`` (mean ``a``, the
window's accuracy in expectation; most samples easy, a few hard, as for a real classifier),
and is right with that chance. The label-free estimator's per-sample P(correct) ``f`` is
either right (``calibrated``: f = q), broken by the shift (``overconfident``: f = q^0.3, the
model claims more than it has) or noise (``uninformative``). Truth is the realized accuracy
of the whole window (its N unlabeled predictions and the n labeled ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from shiftwatch.detectors.intervals import prediction_powered_accuracy

LABEL_FREE: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "calibrated": lambda q, rng: q,
    "overconfident": lambda q, rng: q**0.3,
    "uninformative": lambda q, rng: rng.random(len(q)),
}
CONCENTRATION = 2.0  # of the Beta the per-sample chance of being right is drawn from


@dataclass(frozen=True, slots=True)
class Cell:
    """One case of the grid, run over ``trials`` seeded windows."""

    accuracy: float
    n_labeled: int
    n_window: int
    label_free: str = "calibrated"
    trials: int = 400


@dataclass(frozen=True, slots=True)
class Coverage:
    """How often each 95 % interval held the window's accuracy, how wide it was, and how often it was a point."""

    powered_coverage: float
    powered_mean_width: float
    powered_zero_width: int
    labels_coverage: float
    labels_mean_width: float
    labels_zero_width: int
    wilson_coverage: float  # labels alone, Wilson score interval: narrower than exact, and below 0.95 near 100 %
    wilson_mean_width: float
    wald_coverage: float  # labels alone, estimate ± 1.96 sd: the construction issue 29 replaced
    wald_zero_width: int


def run(cell: Cell, seed: int = 0) -> Coverage:
    """``cell.trials`` windows, seeds ``seed``, ``seed + 1``, ...; each interval judged against its window's accuracy."""
    n, big_n = cell.n_labeled, cell.n_window
    held: list[bool] = []
    labels_held: list[bool] = []
    wilson_held: list[bool] = []
    wald_held: list[bool] = []
    widths: list[float] = []
    labels_widths: list[float] = []
    wilson_widths: list[float] = []
    wald_widths: list[float] = []
    for trial in range(cell.trials):
        rng = np.random.default_rng(seed + trial)
        q = rng.beta(CONCENTRATION * cell.accuracy, CONCENTRATION * (1.0 - cell.accuracy), big_n + n)
        right = (rng.random(big_n + n) < q).astype(np.float64)
        f = LABEL_FREE[cell.label_free](q, rng)
        truth = float(right.mean())
        powered = prediction_powered_accuracy(f[n:], f[:n], right[:n])
        for interval, hits, width in (
            (powered.interval, held, widths),
            (powered.labels_only_interval, labels_held, labels_widths),
            (_wilson(right[:n]), wilson_held, wilson_widths),
            (_wald(right[:n]), wald_held, wald_widths),
        ):
            hits.append(interval[0] <= truth <= interval[1])
            width.append(interval[1] - interval[0])
    return Coverage(
        powered_coverage=float(np.mean(held)),
        powered_mean_width=float(np.mean(widths)),
        powered_zero_width=int(np.sum(np.asarray(widths) <= 0)),
        labels_coverage=float(np.mean(labels_held)),
        labels_mean_width=float(np.mean(labels_widths)),
        labels_zero_width=int(np.sum(np.asarray(labels_widths) <= 0)),
        wilson_coverage=float(np.mean(wilson_held)),
        wilson_mean_width=float(np.mean(wilson_widths)),
        wald_coverage=float(np.mean(wald_held)),
        wald_zero_width=int(np.sum(np.asarray(wald_widths) <= 0)),
    )


def _wilson(right: np.ndarray) -> tuple[float, float]:
    interval = binomtest(int(right.sum()), len(right)).proportion_ci(method="wilson")
    return float(interval.low), float(interval.high)


def _wald(right: np.ndarray) -> tuple[float, float]:
    half = 1.959964 * float(np.sqrt(right.var(ddof=1) / len(right)))
    return max(0.0, float(right.mean()) - half), min(1.0, float(right.mean()) + half)
