"""The domain-classifier test is calibrated: over 250 seeded null windows of five shapes it fires at most alpha (binomial bound)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from shiftwatch.detectors.classifier import ClassifierDetector
from shiftwatch.detectors.synthetic import CASES

ALPHA = 0.05
WINDOWS_PER_SHAPE = 50
Null = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


def synthetic(case: str, n: int) -> Null:
    return lambda rng: CASES[case].windows(int(rng.integers(1 << 31)), n=n)


SHAPES: dict[str, Null] = {
    "gaussian_8d_80+80": lambda rng: (rng.normal(size=(80, 8)), rng.normal(size=(80, 8))),
    "gaussian_4d_150+50": lambda rng: (rng.normal(size=(150, 4)), rng.normal(size=(50, 4))),
    "mixture_64d_80+80": synthetic("null_64", 80),
    "heavy_tailed_64d_80+80": synthetic("null_heavy_tailed", 80),
    "l2_normalised_64d_80+80": synthetic("null_l2_normalised", 80),
}


def test_false_positive_rate_is_within_the_binomial_bound_of_alpha_over_250_null_windows() -> None:
    flags: dict[str, list[bool]] = {}
    for number, (shape, draw) in enumerate(SHAPES.items()):
        for seed in range(WINDOWS_PER_SHAPE):
            rng = np.random.default_rng([24, number, seed])
            reference, current = draw(rng)
            detector = ClassifierDetector(n_permutations=99, n_trees=10, n_folds=2, seed=seed)
            flags.setdefault(shape, []).append(detector.fit(reference).test(current).p_value <= ALPHA)
    total = sum(len(v) for v in flags.values())
    fired = sum(sum(v) for v in flags.values())
    # Upper end of the central 95 % range of Binomial(250, 0.05): 20 windows (0.08).
    assert fired <= stats.binom.ppf(0.975, total, ALPHA), {k: sum(v) for k, v in flags.items()}
    # No shape carries the rate alone (Binomial(50, 0.05)'s 99.9 % point is 8).
    assert max(sum(v) for v in flags.values()) <= stats.binom.ppf(0.999, WINDOWS_PER_SHAPE, ALPHA)


def test_each_fold_is_tested_on_samples_its_model_never_saw_and_combined_by_bonferroni() -> None:
    rng = np.random.default_rng(3)
    reference, current = rng.normal(size=(200, 6)), rng.normal(size=(200, 6)) + np.r_[1.0, np.zeros(5)]
    result = ClassifierDetector(n_permutations=99, n_trees=20, n_folds=2).fit(reference).test(current)
    fold_p = result.evidence["fold_p_values"]
    assert len(fold_p) == 2 and result.p_value == min(1.0, 2 * min(fold_p))
    assert result.drift and result.statistic > 0.7  # a one-sd move is plain to a forest
