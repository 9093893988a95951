"""Kernel MMD two-sample test on embeddings over several bandwidths (MMD-Agg), permutations as matrix products.

Statistic: unbiased MMD^2 with Gaussian kernels at several bandwidths, multiples of the
median heuristic on the reference, fixed at ``fit`` (one bandwidth misses shifts at other
scales: a small one sees repeated frames and variance changes, a large one a mean shift along
one direction). The kernels never depend on the current window, so every window of one
reference is measured with the same kernels: a bigger statistic is a bigger effect. (Taken
from reference + current, as before issue 24, a far-off window widened its own kernels:
on one outside model the effect fell from 127.5 % to 17.4 % while the statistic doubled.)
p-value: the bandwidths' permutation tests aggregated by max-T on the SAME permutations
(``detectors.aggregation``), so the family-wise error stays at alpha. One distance matrix and
one indicator matrix serve every bandwidth: per bandwidth one ``exp`` into a shared buffer and
``KI = K0 @ I`` (K0 with a zero diagonal, I the (N, 1 + B) reference-group indicators); the
within/between sums of every permutation are column sums of ``KI * I``, so unequal group sizes
(block permutations) are exact. float32 throughout; 2,000 + 2,000 x 128-d, 5 bandwidths, in
bench/detectors_speed.py. ``bandwidth_multipliers=(1.0,)`` is the classic single-bandwidth test.

Memory: at most ``max_samples`` of each window enter the kernel matrix (2,000 + 2,000 is
64 MB in float32, twice: distances and the kernel buffer). Larger windows are subsampled at
random for the test; the evidence (mean kernel to the reference, and the witness score, at the
median bandwidth) is computed for *every* current sample in chunks, so the most atypical
samples are found in the whole window. Peak for a 50,000 x 512 window: bench/detectors_speed.py.

Correlated streams: with ``stream_ids`` / ``timestamps`` (at fit and/or test) the test
permutes blocks of consecutive frames (see ``dependence``), which keeps the false-positive
rate at alpha on autocorrelated camera streams where the sample-wise test over-fires.

Effect size: MMD^2 at the deciding bandwidth as a percentage of the reference's own kernel
spread ``2 (1 - mean k(x, x'))`` (the mean squared kernel distance between two reference
samples): 0 for no change, near 100 when current and reference do not overlap; independent of
n. Kernel and spread are fixed by the reference, so at each bandwidth the effect is the
statistic times a constant (``100 / spread``): monotone in the statistic for a fixed reference
(tests/detectors/test_effect.py). The reported statistic and effect are at the same
(deciding) bandwidth, named in ``evidence["bandwidth"]``; every bandwidth's pair is in
``evidence["bandwidths"]``. Drift follows ``detectors.effect``: significant, and not negligible at this window size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from shiftwatch.detectors.aggregation import max_t_aggregate
from shiftwatch.detectors.base import AtypicalSample, DriftResult
from shiftwatch.detectors.dependence import block_ids
from shiftwatch.detectors.effect import EFFECT_WINDOW
from shiftwatch.detectors.kernels import gaussian_kernel, median_bandwidth, squared_distances
from shiftwatch.detectors.permutation import reference_indicators
from shiftwatch.detectors.two_sample import TwoSampleDetector, as_context, as_matrix, subsample, take, top_indices

EFFECT_UNIT = "% of reference kernel spread"
ATYPICAL_REASON = "1 - mean kernel to the reference (witness bandwidth): 1 = like no reference sample"
# Bandwidths as multiples of the median heuristic: 2^-2 .. 2^2, MMD-Agg's grid around the median.
BANDWIDTH_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


def permuted_mmd2(kernel: np.ndarray, indicators: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased MMD^2 of every column's split, and each row's kernel sum to the observed reference group.

    ``kernel`` must have a zero diagonal. One product ``K @ [I | 1]`` gives everything: the
    last column's sum is the kernel total, so no second pass over the N x N matrix.
    """
    n = kernel.shape[0]
    products = (kernel @ np.hstack([indicators, np.ones((n, 1), dtype=indicators.dtype)])).astype(np.float64)
    ki, row_sums = products[:, :-1], products[:, -1]
    ind = indicators.astype(np.float64)
    total = float(row_sums.sum())
    within_ref = (ki * ind).sum(axis=0)
    between = ki.sum(axis=0) - within_ref
    within_cur = total - within_ref - 2.0 * between
    n_ref = ind.sum(axis=0)
    n_cur = n - n_ref
    stats = within_ref / (n_ref * (n_ref - 1)) + within_cur / (n_cur * (n_cur - 1)) - 2.0 * between / (n_ref * n_cur)
    return stats, np.stack([ki[:, 0], row_sums], axis=1)


def kernels_by_bandwidth(squared: np.ndarray, sigmas: list[float]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, Gaussian kernel with zero diagonal) per bandwidth, in one reused buffer, widest first.

    Halving the bandwidth raises the kernel to the 4th power, so a grid of factors of 2 needs
    one ``exp`` and two in-place squarings per further bandwidth (any other grid: an ``exp``
    each). Rounding differs from a fresh ``exp`` by ~1e-5 relative; the permutation test is
    exact for whatever kernel it is given, so that only moves the kernel, not the level.
    """
    kernel = np.empty_like(squared)
    previous: float | None = None
    for index in sorted(range(len(sigmas)), key=lambda i: -sigmas[i]):
        sigma = sigmas[index]
        if previous is not None and abs(previous / sigma - 2.0) < 1e-9:
            np.multiply(kernel, kernel, out=kernel)
            np.multiply(kernel, kernel, out=kernel)
        else:
            np.multiply(squared, np.float32(-1.0 / (2.0 * sigma * sigma)), out=kernel)
            np.exp(kernel, out=kernel)
            np.fill_diagonal(kernel, 0.0)
        previous = sigma
        yield index, kernel


class MMDDetector(TwoSampleDetector):
    """Gaussian-kernel MMD^2 over several bandwidths (max-T aggregated), blockwise on streams, witness evidence."""

    name = "mmd"

    def __init__(
        self,
        alpha: float = 0.05,
        n_permutations: int = 500,  # p-value resolution 0.002, enough for alpha = 0.01
        min_effect_size: float = 0.5,  # % of reference spread: "worth a look" (severity), not a gate
        max_samples: int = 2000,  # per window: 2,000 + 2,000 keeps the kernel matrix at 64 MB
        n_evidence: int = 10,
        seed: int = 0,
        bandwidth_multipliers: tuple[float, ...] | list[float] = BANDWIDTH_MULTIPLIERS,
        effect_window: int = EFFECT_WINDOW,
    ) -> None:
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.min_effect_size = min_effect_size
        self.max_samples = max_samples
        self.n_evidence = n_evidence
        self.seed = seed
        self.bandwidth_multipliers = [float(m) for m in bandwidth_multipliers]  # a list: JSON-able config
        self.effect_window = effect_window

    def fit(self, reference: np.ndarray, **context: Any) -> MMDDetector:
        x = as_matrix(reference, "reference")
        keep = subsample(len(x), self.max_samples, np.random.default_rng(self.seed))
        self.reference_ = x[keep]
        self.reference_blocks_ = block_ids(
            self.reference_,
            take(as_context(context.get("stream_ids"), len(x), "stream_ids"), keep),
            take(as_context(context.get("timestamps"), len(x), "timestamps"), keep),
        )
        self.median_bandwidth_ = self._reference_bandwidth()
        return self

    def _reference_bandwidth(self) -> float:
        """The median heuristic on the reference alone: one kernel per reference, whatever the window."""
        stored = getattr(self, "median_bandwidth_", None)  # states stored before it was kept lack it
        if stored is not None:
            return float(stored)
        return median_bandwidth(squared_distances(self.reference_, self.reference_), np.random.default_rng(self.seed))

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        self.check_fitted()
        reference = self.reference_
        y = as_matrix(current, "current", dims=reference.shape[1])
        rng = np.random.default_rng(self.seed + 1)
        keep = subsample(len(y), self.max_samples, rng)
        y_test = y[keep]
        current_blocks = block_ids(
            y_test,
            take(as_context(context.get("stream_ids"), len(y), "stream_ids"), keep),
            take(as_context(context.get("timestamps"), len(y), "timestamps"), keep),
        )
        n_reference_blocks = int(self.reference_blocks_.max()) + 1
        block_of = np.concatenate([self.reference_blocks_, current_blocks + n_reference_blocks])

        squared = squared_distances(pooled := np.vstack([reference, y_test]), pooled)
        median_sigma = self._reference_bandwidth()
        sigmas = [median_sigma * m for m in self.bandwidth_multipliers]
        indicators = reference_indicators(block_of, n_reference_blocks, self.n_permutations, rng)
        median_row = int(np.argmin(np.abs(np.log(np.asarray(self.bandwidth_multipliers)))))
        stats, spreads, sums = self._statistics(squared, sigmas, indicators, len(reference), median_row)
        del squared, indicators
        aggregate = max_t_aggregate(stats, self.alpha)

        observed = stats[:, 0]
        effects = 100.0 * np.maximum(observed, 0.0) / spreads
        # The deciding bandwidth: where the statistic stands highest over its critical value.
        margin = np.where(np.isfinite(aggregate.critical), observed / np.maximum(aggregate.critical, 1e-30), -np.inf)
        best = int(np.argmax(margin)) if np.isfinite(margin).any() else int(np.argmax(aggregate.standardised))
        verdict = self.decide(
            aggregate.p_value, float(effects[best]), len(reference), len(y_test),
            statistic=float(observed[best]), critical=float(aggregate.critical[best]),
        )

        if len(y_test) == len(y):  # every current sample was tested: its kernel sums are already known
            witness, similarity = self._witness_from_sums(sums, len(reference))
        else:
            witness, similarity = self._witness(y, y_test, keep, sigmas[median_row])
        top = top_indices(witness, self.n_evidence)
        atypical = top_indices(-similarity, self.n_evidence)
        return DriftResult(
            method=self.name,
            statistic=float(observed[best]),
            p_value=aggregate.p_value,
            threshold=self.alpha,
            n_reference=len(reference),
            n_current=len(y),
            effect_size=float(effects[best]),
            effect_unit=EFFECT_UNIT,
            **verdict.fields(),
            atypical=tuple(
                AtypicalSample(int(i), 1.0 - float(similarity[i]), ATYPICAL_REASON) for i in atypical
            ),
            evidence={
                "bandwidth": sigmas[best],
                "median_bandwidth": median_sigma,
                "witness_bandwidth": sigmas[median_row],
                "bandwidths": [
                    {"sigma": sigma, "standardised": float(t), "effect_size": float(e), "statistic": float(s)}
                    for sigma, t, e, s in zip(sigmas, aggregate.standardised, effects, observed)
                ],
                "n_permutations": self.n_permutations,
                "n_current_tested": len(y_test),
                "n_blocks": [n_reference_blocks, int(current_blocks.max()) + 1],
                # Samples least like anything in the reference (isolated novelties)...
                "most_atypical": atypical,
                "reference_similarity": [float(similarity[i]) for i in atypical],
                # ...and samples from regions the current window over-populates (a shifted cluster).
                "most_overrepresented": top,
                "witness_scores": [float(witness[i]) for i in top],
                "witness_unit": "mean kernel to current minus mean kernel to reference (witness_bandwidth)",
            },
        )

    @staticmethod
    def _statistics(
        squared: np.ndarray, sigmas: list[float], indicators: np.ndarray, n_ref: int, witness_at: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per bandwidth: MMD^2 of every permutation column and the reference's kernel spread; and, at
        bandwidth ``witness_at``, each row's kernel sums to the reference and to everything."""
        stats = np.empty((len(sigmas), indicators.shape[1]), dtype=np.float64)
        spreads = np.empty(len(sigmas), dtype=np.float64)
        sums = np.empty((len(squared), 2))
        for row, kernel in kernels_by_bandwidth(squared, sigmas):
            stats[row], row_sums = permuted_mmd2(kernel, indicators)
            mean_within_ref = float(row_sums[:n_ref, 0].sum()) / (n_ref * (n_ref - 1))
            spreads[row] = max(2.0 * (1.0 - mean_within_ref), 1e-12)
            if row == witness_at:
                sums = row_sums
        return stats, spreads, sums

    @staticmethod
    def _witness_from_sums(sums: np.ndarray, n_ref: int) -> tuple[np.ndarray, np.ndarray]:
        """Witness and mean kernel to the reference of every current row, from its kernel sums (zero diagonal)."""
        to_reference = sums[n_ref:, 0] / n_ref
        m = len(sums) - n_ref
        to_current = (sums[n_ref:, 1] - sums[n_ref:, 0]) / max(m - 1, 1)
        return to_current - to_reference, to_reference

    def _witness(
        self, y: np.ndarray, y_test: np.ndarray, keep: np.ndarray, sigma: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per current sample: witness (resembles current more than reference) and mean kernel to the reference."""
        scores = np.empty(len(y), dtype=np.float64)
        similarity = np.empty(len(y), dtype=np.float64)
        chunk = 4096
        m = len(y_test)
        in_test = np.zeros(len(y), dtype=bool)
        in_test[keep] = True
        for start in range(0, len(y), chunk):
            part = y[start : start + chunk]
            to_current = gaussian_kernel(part, y_test, sigma).sum(axis=1, dtype=np.float64)
            # A tested sample's kernel with itself (1) is no evidence; leave it out.
            own = in_test[start : start + chunk]
            to_current = np.where(own, (to_current - 1.0) / max(m - 1, 1), to_current / m)
            to_reference = gaussian_kernel(part, self.reference_, sigma).mean(axis=1, dtype=np.float64)
            scores[start : start + chunk] = to_current - to_reference
            similarity[start : start + chunk] = to_reference
        return scores, similarity
