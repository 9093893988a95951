"""Statistical validity of the two-sample detectors: uniform null p-values, false-positive rate at alpha, power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from shiftwatch.detectors import DETECTORS
from shiftwatch.detectors.permutation import permutation_p_value

ALPHA = 0.05
# Binomial standard error of a rate near 0.05 over 200 trials is 0.015; 2.5 SE of slack.
FPR_TOLERANCE = 0.04

# Small, fast settings per method; 99 permutations give p-values on a 1/100 grid.
FAST = {
    "mmd": {"n_permutations": 99},
    "lsdd": {"n_permutations": 99, "n_centres": 30},
    "classifier": {"n_permutations": 99, "n_trees": 10, "n_folds": 2},
    "ks": {},
}
TRIALS = {"mmd": 200, "lsdd": 200, "ks": 200, "classifier": 80}


def null_p_values(name: str, trials: int, n: int = 60, d: int = 5) -> np.ndarray:
    p_values = []
    for seed in range(trials):
        rng = np.random.default_rng(1000 + seed)
        reference, current = rng.normal(size=(n, d)), rng.normal(size=(n, d))
        detector = DETECTORS[name](alpha=ALPHA, min_effect_size=0.0, **FAST[name])
        p_values.append(detector.fit(reference).test(current).p_value)
    return np.array(p_values)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mmd", "lsdd", "classifier", "ks"])
def test_null_p_values_are_uniform_and_false_positive_rate_holds(name: str) -> None:
    p_values = null_p_values(name, TRIALS[name])
    assert p_values.min() > 0.0
    if name == "classifier":
        # Bonferroni over its folds: valid (P(p <= t) <= t), not uniform (a mass at 1 by design).
        for t in (0.02, 0.05, 0.1, 0.2, 0.5):
            assert np.mean(p_values <= t) <= t + FPR_TOLERANCE
    else:
        assert stats.kstest(p_values, "uniform").pvalue > 0.01
    assert np.mean(p_values <= ALPHA) <= ALPHA + FPR_TOLERANCE


@pytest.mark.parametrize("name", ["mmd", "lsdd", "classifier", "ks"])
def test_clear_mean_shift_is_detected_every_time(name: str) -> None:
    detected = 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        reference = rng.normal(size=(150, 8))
        current = rng.normal(size=(150, 8)) + np.r_[0.8, 0.8, np.zeros(6)]
        detected += DETECTORS[name](**FAST[name]).fit(reference).test(current).drift
    assert detected == 5


def test_permutation_p_value_counts_the_observed_split_and_is_never_zero() -> None:
    assert permutation_p_value(10.0, np.zeros(99)) == pytest.approx(1 / 100)
    assert permutation_p_value(0.0, np.zeros(99)) == 1.0
    # An exact tie with a permuted statistic counts against the observed one.
    assert permutation_p_value(1.0, np.array([1.0, 0.0, 0.0])) == pytest.approx(2 / 4)


def test_extreme_shift_gets_the_smallest_possible_p_value_not_zero() -> None:
    rng = np.random.default_rng(0)
    result = DETECTORS["mmd"](n_permutations=99).fit(rng.normal(size=(50, 3))).test(rng.normal(size=(50, 3)) + 10)
    assert result.p_value == pytest.approx(1 / 100)


def probability_rows(rng: np.random.Generator, n: int, sharpness: float, class_weights: np.ndarray | None = None) -> np.ndarray:
    k = 10
    logits = rng.normal(size=(n, k))
    top = rng.choice(k, size=n, p=class_weights)
    logits[np.arange(n), top] += sharpness
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["bbsd_confidence", "bbsd_label", "bbsd_probs", "bbsd"])
def test_output_detectors_hold_false_positive_rate(name: str) -> None:
    rejections = 0
    trials = 150
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        detector = DETECTORS[name](alpha=ALPHA).fit(probability_rows(rng, 300, 3.0))
        rejections += detector.test(probability_rows(rng, 200, 3.0)).p_value <= ALPHA
    assert rejections / trials <= ALPHA + FPR_TOLERANCE


def test_label_shift_is_found_by_the_class_count_test_and_named() -> None:
    rng = np.random.default_rng(3)
    skewed = np.full(10, 0.5 / 9)
    skewed[4] = 0.5
    result = DETECTORS["bbsd_label"]().fit(probability_rows(rng, 500, 3.0)).test(probability_rows(rng, 500, 3.0, skewed))
    assert result.drift
    assert result.evidence["most_changed_classes"][0] == 4
    assert result.effect_size > 20


def test_less_confident_outputs_are_found_by_the_confidence_test() -> None:
    rng = np.random.default_rng(4)
    result = DETECTORS["bbsd_confidence"]().fit(probability_rows(rng, 500, 4.0)).test(probability_rows(rng, 500, 2.0))
    assert result.drift
    assert result.evidence["signed_shift_points"] < -10
