"""Each sample a detector calls atypical carries that sample's own score (issue 18: MMD's were paired with the witness list)."""

from __future__ import annotations

import numpy as np
import pytest

from shiftwatch.detectors import DETECTORS
from shiftwatch.detectors.evidence import detector_atypical
from shiftwatch.detectors.kernels import gaussian_kernel


def shifted_windows(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(400, 8))
    current = rng.normal(size=(300, 8))
    current[:15] += 4.0  # a few samples far from everything in the reference
    return reference, current


@pytest.mark.parametrize("seed", range(3))
def test_mmd_atypical_scores_are_each_samples_own_distance_from_the_reference(seed: int) -> None:
    reference, current = shifted_windows(seed)
    detector = DETECTORS["mmd"](n_permutations=50, seed=seed).fit(reference)
    result = detector.test(current)
    sigma = result.evidence["witness_bandwidth"]
    own = 1.0 - gaussian_kernel(current, detector.reference_, sigma).mean(axis=1)
    samples = detector_atypical(result, len(current))
    assert len(samples) == len(result.evidence["most_atypical"]) > 0
    for sample in samples:
        assert sample.score == pytest.approx(own[sample.index], abs=1e-6), sample
    assert [s.index for s in samples] == list(np.argsort(-own, kind="stable")[: len(samples)])
    assert {s.index for s in samples} <= set(range(15))  # the strangest listed are the far samples
    assert all(s.reason for s in samples)


def test_auto_passes_mmds_sample_ranking_through() -> None:
    reference, current = shifted_windows(0)
    result = DETECTORS["auto"](n_permutations=50).fit(reference).test(current)
    assert result.atypical and {s.index for s in result.atypical} <= set(range(15))


def test_classifier_atypical_scores_are_its_current_window_probabilities() -> None:
    reference, current = shifted_windows(1)
    result = DETECTORS["classifier"](n_permutations=20, seed=1).fit(reference).test(current)
    assert [s.index for s in result.atypical] == result.evidence["most_atypical"]
    assert [s.score for s in result.atypical] == result.evidence["current_scores"]
    scores = [s.score for s in result.atypical]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= v <= 1.0 for v in scores)
    assert len({s.index for s in result.atypical} & set(range(15))) >= 0.8 * len(result.atypical)


def test_indices_outside_the_window_are_dropped() -> None:
    reference, current = shifted_windows(2)
    result = DETECTORS["mmd"](n_permutations=20).fit(reference).test(current)
    assert all(s.index < 10 for s in detector_atypical(result, 10))
