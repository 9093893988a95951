"""Correlated camera streams: a naive test over-fires on autocorrelated frames, ours holds the false-positive rate."""

from __future__ import annotations

import numpy as np
import pytest

from shiftwatch.detectors import DETECTORS
from shiftwatch.detectors.dependence import block_ids, effective_sample_size

ALPHA = 0.05


def camera_frames(rng: np.random.Generator, cameras: int = 3, frames: int = 100, d: int = 4, phi: float = 0.9):
    """Per camera an AR(1) feature stream: frame t = phi * frame t-1 + noise, stationary unit variance."""
    features, stream_ids, timestamps = [], [], []
    for camera in range(cameras):
        x = np.empty((frames, d))
        x[0] = rng.normal(size=d)
        noise = rng.normal(size=(frames, d)) * np.sqrt(1 - phi**2)
        for t in range(1, frames):
            x[t] = phi * x[t - 1] + noise[t]
        features.append(x)
        stream_ids += [f"cam-{camera}"] * frames
        timestamps.append(np.arange(frames) * 0.2)
    return np.vstack(features).astype(np.float32), np.array(stream_ids), np.concatenate(timestamps)


def rejection_rates(name: str, trials: int, **config) -> tuple[float, float]:
    naive = streamwise = 0
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        reference, ref_streams, ref_times = camera_frames(rng)
        current, cur_streams, cur_times = camera_frames(rng)
        plain = DETECTORS[name](alpha=ALPHA, min_effect_size=0.0, **config).fit(reference).test(current)
        aware = (
            DETECTORS[name](alpha=ALPHA, min_effect_size=0.0, **config)
            .fit(reference, stream_ids=ref_streams, timestamps=ref_times)
            .test(current, stream_ids=cur_streams, timestamps=cur_times)
        )
        naive += plain.p_value <= ALPHA
        streamwise += aware.p_value <= ALPHA
    return naive / trials, streamwise / trials


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "config", "trials"),
    [("mmd", {"n_permutations": 99}, 120), ("lsdd", {"n_permutations": 99, "n_centres": 30}, 100), ("ks", {}, 150)],
)
def test_autocorrelated_stream_fools_the_naive_test_but_not_the_stream_aware_one(name: str, config: dict, trials: int) -> None:
    naive, streamwise = rejection_rates(name, trials, **config)
    assert naive > 0.5  # frames taken as independent: the quiet stream "drifts" most of the time
    assert streamwise <= ALPHA + 0.045  # binomial SE at 120 trials is 0.02


def test_block_length_follows_autocorrelation_and_independent_frames_stay_single() -> None:
    rng = np.random.default_rng(0)
    frames, streams, times = camera_frames(rng, phi=0.9)
    blocks = block_ids(frames, streams, times)
    sizes = np.bincount(blocks)
    assert sizes.max() >= 20  # tau of AR(1) at 0.9 is 19
    # Blocks never mix cameras.
    for block in np.unique(blocks):
        assert len(set(streams[blocks == block])) == 1
    independent = rng.normal(size=(300, 4))
    assert np.bincount(block_ids(independent, streams, times)).max() <= 3


def test_effective_sample_size_of_ar1_is_about_n_times_one_minus_phi_over_one_plus_phi() -> None:
    rng = np.random.default_rng(1)
    frames, streams, times = camera_frames(rng, cameras=4, frames=500, d=1, phi=0.8)
    n_eff = effective_sample_size(frames[:, 0], streams, times)
    assert 2000 * 0.2 / 1.8 * 0.6 < n_eff < 2000 * 0.2 / 1.8 * 1.6
    # Shuffled time order within each camera breaks the dependence: close to n again.
    assert effective_sample_size(rng.permutation(frames[:, 0]), streams, times) > 1500


def test_labeled_accuracy_on_streams_uses_effective_counts() -> None:
    rng = np.random.default_rng(2)
    fires = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        latent_ref, streams, times = camera_frames(rng, d=1)
        latent_cur, _, _ = camera_frames(rng, d=1)
        # Frames that are hard stay hard for a while: correctness is autocorrelated.
        ref_ok, cur_ok = (latent_ref[:, 0] > -1.2).astype(int), (latent_cur[:, 0] > -1.2).astype(int)
        detector = DETECTORS["labeled_accuracy"](min_effect_size=0.0).fit(ref_ok, stream_ids=streams, timestamps=times)
        fires += detector.test(cur_ok, stream_ids=streams, timestamps=times).p_value <= ALPHA
    assert fires / 60 <= ALPHA + 0.06


def test_output_detectors_accept_stream_context_and_shrink_their_evidence() -> None:
    rng = np.random.default_rng(3)
    latent_ref, streams, times = camera_frames(rng, d=3)
    latent_cur, _, _ = camera_frames(rng, d=3)
    softmax = lambda z: np.exp(2 * z) / np.exp(2 * z).sum(axis=1, keepdims=True)
    for name in ("bbsd", "bbsd_confidence", "bbsd_label", "bbsd_probs"):
        naive = DETECTORS[name]().fit(softmax(latent_ref)).test(softmax(latent_cur))
        aware = (
            DETECTORS[name]()
            .fit(softmax(latent_ref), stream_ids=streams, timestamps=times)
            .test(softmax(latent_cur), stream_ids=streams, timestamps=times)
        )
        assert aware.p_value >= naive.p_value
