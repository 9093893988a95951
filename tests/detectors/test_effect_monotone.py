"""The MMD effect moves with its statistic: for one reference, kernels and spread are fixed, so a bigger MMD^2 is a bigger effect."""

from __future__ import annotations

import numpy as np

from shiftwatch.detectors.mmd import MMDDetector


def windows(rng: np.random.Generator, n: int, dims: int) -> list[np.ndarray]:
    """Windows moving ever further from the reference: a growing share drawn from a far cluster, then a far mean."""
    far = np.full(dims, 3.0)
    out = []
    for share in (0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0):
        current = rng.normal(size=(n, dims))
        k = int(round(share * n))
        current[:k] += far
        out.append(current)
    out.append(rng.normal(size=(n, dims)) + 2.0 * far)  # beyond everything: the case that used to widen its own kernel
    return out


def test_effect_is_the_statistic_times_a_constant_of_the_reference_at_every_bandwidth() -> None:
    rng = np.random.default_rng(24)
    reference = rng.normal(size=(400, 16))
    detector = MMDDetector(n_permutations=49).fit(reference)
    results = [detector.test(current) for current in windows(rng, 200, 16)]

    medians = {round(r.evidence["median_bandwidth"], 9) for r in results}
    assert len(medians) == 1  # one kernel per reference, whatever the window brings
    per_bandwidth = np.array([[(b["statistic"], b["effect_size"]) for b in r.evidence["bandwidths"]] for r in results])
    for column in range(per_bandwidth.shape[1]):
        statistic, effect = per_bandwidth[:, column, 0], per_bandwidth[:, column, 1]
        positive = statistic > 0
        ratio = effect[positive] / statistic[positive]
        assert np.ptp(ratio) <= 1e-6 * ratio.max()  # effect = statistic x (100 / spread), spread fixed
        assert np.all(np.diff(effect[np.argsort(statistic)]) >= 0)  # never down while the statistic goes up
    # The reported pair sits at one named bandwidth and obeys the same constant.
    for result in results:
        chosen = next(b for b in result.evidence["bandwidths"] if b["sigma"] == result.evidence["bandwidth"])
        assert result.statistic == chosen["statistic"] and result.effect_size == chosen["effect_size"]
    # Further from the reference means a bigger effect at the widest bandwidth (no window shrinks its own yardstick).
    widest = per_bandwidth[:, -1, 1]
    assert np.all(np.diff(widest) > 0)


def test_a_stored_state_without_the_bandwidth_recomputes_it_from_the_reference() -> None:
    rng = np.random.default_rng(5)
    detector = MMDDetector(n_permutations=19).fit(rng.normal(size=(100, 4)))
    state = detector.get_state()
    bandwidth = state.pop("median_bandwidth_")
    restored = MMDDetector.from_state(detector.get_config(), state)
    current = rng.normal(size=(50, 4))
    assert restored.test(current).evidence["median_bandwidth"] == bandwidth == detector.test(current).evidence["median_bandwidth"]
