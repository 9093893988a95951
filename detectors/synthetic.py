"""Synthetic embedding shifts with known truth: the cases of issue 14, for tests and bench/detectors_quality.py.

The clean distribution is a mixture of 10 Gaussian clusters (an embedding space with classes),
so reference and current windows from it differ by sampling alone ("no change" is exactly
true). Each shift changes one thing a camera fleet meets: a mean move along one direction,
two of 512 dimensions, the variance of a few dimensions, a vanished class, a small far-away
contamination, a rotated covariance with the marginals kept, a frozen camera repeating one
frame. Nulls include heavy tails and L2-normalised embeddings, where the median-bandwidth
kernel and asymptotic tests are easiest to miscalibrate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

CLUSTERS = 10
CLUSTER_SPREAD = 1.0  # cluster centres ~ N(0, 1) per dimension; within-cluster noise N(0, 0.5^2)
NOISE = 0.5
MEAN_SHIFT = 1.5

Window = Callable[[int, np.random.Generator], np.ndarray]


@dataclass(frozen=True, slots=True)
class Case:
    """One synthetic case: a name, the dimension, the window size it is tested at, and whether it is a shift."""

    name: str
    dims: int
    n: int
    shifted: bool
    make: Callable[[int, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]

    def windows(self, seed: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reference and current windows of ``n`` samples each (the case's own size by default), float32."""
        rng = np.random.default_rng(seed)
        reference, current = self.make(self.dims, n or self.n, rng)
        return reference.astype(np.float32), current.astype(np.float32)


class Mixture(Protocol):
    """A Window that can also draw with other class weights (a class vanishing, say)."""

    def __call__(self, n: int, r: np.random.Generator, w: np.ndarray = ...) -> np.ndarray: ...


def mixture(dims: int, rng: np.random.Generator, weights: np.ndarray | None = None) -> Mixture:
    """A sampler of the clean distribution; the centres are drawn once per case (same for both windows)."""
    centres = rng.normal(scale=CLUSTER_SPREAD, size=(CLUSTERS, dims))
    weights = np.full(CLUSTERS, 1.0 / CLUSTERS) if weights is None else weights

    def sample(n: int, r: np.random.Generator, w: np.ndarray = weights) -> np.ndarray:
        labels = r.choice(CLUSTERS, size=n, p=w)
        return centres[labels] + r.normal(scale=NOISE, size=(n, dims))

    return sample


def _null(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    sample = mixture(dims, rng)
    return sample(n, rng), sample(n, rng)


def _heavy_tailed_null(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Student-t (3 degrees of freedom) noise: rare far samples in both windows, no change."""
    centres = rng.normal(size=(CLUSTERS, dims))
    draw = lambda: centres[rng.integers(0, CLUSTERS, n)] + NOISE * rng.standard_t(3, size=(n, dims))
    return draw(), draw()


def _normalised_null(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    reference, current = _null(dims, n, rng)
    return _unit(reference), _unit(current)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _mean_shift(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The whole window moves along one random direction (``MEAN_SHIFT`` within-cluster sd)."""
    sample = mixture(dims, rng)
    direction = _unit(rng.normal(size=(1, dims)))[0]
    return sample(n, rng), sample(n, rng) + MEAN_SHIFT * NOISE * direction


def _few_dimensions(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two of the dimensions move by 2 within-cluster sd (0.9 of their total sd); the other 510 are untouched."""
    sample = mixture(dims, rng)
    current = sample(n, rng)
    current[:, :2] += 2.0 * NOISE
    return sample(n, rng), current


def _variance(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The within-cluster noise of 8 dimensions grows 1.6 times (a blurrier or noisier sensor)."""
    centres = rng.normal(size=(CLUSTERS, dims))
    scale = np.full(dims, NOISE)
    louder = scale.copy()
    louder[:8] *= 1.6
    draw = lambda s: centres[rng.integers(0, CLUSTERS, n)] + rng.normal(size=(n, dims)) * s
    return draw(scale), draw(louder)


def _cluster_vanishes(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One of the 10 classes stops appearing; the other nine share its traffic."""
    sample = mixture(dims, rng)
    without = np.r_[np.full(CLUSTERS - 1, 1.0 / (CLUSTERS - 1)), 0.0]
    return sample(n, rng), sample(n, rng, without)


def _contamination(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """5 % of the current window comes from a cluster far from every reference class."""
    sample = mixture(dims, rng)
    current = sample(n, rng)
    far = 2.0 * CLUSTER_SPREAD * np.sqrt(dims) * _unit(rng.normal(size=(1, dims)))[0]  # ~2x a centre's norm
    k = int(round(0.05 * n))
    current[:k] = far + rng.normal(scale=NOISE, size=(k, dims))
    return sample(n, rng), current


def _rotation(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of dimensions correlated +0.6 become -0.6: every marginal stays the same."""
    centres = rng.normal(size=(CLUSTERS, dims))

    def draw(rho: float) -> np.ndarray:
        noise = rng.normal(size=(n, dims))
        pairs = dims // 2
        first, second = noise[:, 0 : 2 * pairs : 2], noise[:, 1 : 2 * pairs : 2]
        noise[:, 1 : 2 * pairs : 2] = rho * first + np.sqrt(1 - rho * rho) * second
        return centres[rng.integers(0, CLUSTERS, n)] + NOISE * noise

    return draw(0.8), draw(-0.8)


def _frozen_frame(dims: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A frozen camera: one frame repeats for 5 % of the window (50 of 1,000), the rest is normal traffic."""
    sample = mixture(dims, rng)
    current = sample(n, rng)
    k = int(round(0.05 * n))
    current[:k] = current[k]
    return sample(n, rng), current


# The seven shifts of issue 14 and the window sizes its table used (1,000 where it says so, else 500).
SHIFTS = (
    Case("mean_shift_one_direction", 64, 500, True, _mean_shift),
    Case("two_of_512_dims", 512, 1000, True, _few_dimensions),
    Case("variance_8_dims_x1.6", 64, 500, True, _variance),
    Case("one_of_10_clusters_vanishes", 64, 500, True, _cluster_vanishes),
    Case("contamination_5pct_far", 64, 1000, True, _contamination),
    Case("covariance_rotation", 64, 500, True, _rotation),
    Case("frozen_frame_50_of_1000", 64, 1000, True, _frozen_frame),
)
NULLS = (
    Case("null_64", 64, 500, False, _null),
    Case("null_512", 512, 500, False, _null),
    Case("null_heavy_tailed", 64, 500, False, _heavy_tailed_null),
    Case("null_l2_normalised", 64, 500, False, _normalised_null),
)
CASES = {case.name: case for case in SHIFTS + NULLS}
