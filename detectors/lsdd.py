"""Least-squares density difference (LSDD) test on embeddings, with a permutation test as matrix products.

LSDD estimates the L2 distance between the two densities with a Gaussian kernel model
``f(z) = sum_i theta_i k(z, c_i)`` (Bu et al. 2016): ``theta = (H + lambda I)^-1 h``,
``LSDD = 2 h.theta - theta.H theta``, with ``h`` the difference of the windows' mean kernel
vectors and ``H`` the centres' Gram matrix at bandwidth sqrt(2) sigma. All B permutations share
H, so their ``h`` vectors are one product ``K_zc^T W`` and their statistics column sums.

The kernel centres and the bandwidth come from a held-out part of the reference, not from
the samples being tested: centres drawn from the tested reference would sit in the reference
group and make the observed split look special under no change.

Correlated streams: block permutation (see ``dependence``). Effect size: LSDD as a
percentage of the reference density's own squared L2 norm (estimated the same way), 0 for
no change. p-value: ``(1 + #{perm >= obs}) / (1 + B)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftwatch.detectors.base import DriftResult
from shiftwatch.detectors.dependence import block_ids
from shiftwatch.detectors.kernels import gaussian_kernel, median_bandwidth, squared_distances
from shiftwatch.detectors.permutation import permutation_critical, permutation_p_value, reference_indicators
from shiftwatch.detectors.two_sample import TwoSampleDetector, as_context, as_matrix, subsample, take


class LSDDDetector(TwoSampleDetector):
    """LSDD between reference and current densities, permutation p-value (blockwise on streams)."""

    name = "lsdd"

    def __init__(
        self,
        alpha: float = 0.05,
        n_permutations: int = 500,
        min_effect_size: float = 1.0,  # % of the reference density's squared norm
        n_centres: int = 100,  # kernel model size; more centres cost C^2 but add little past 100 (alibi uses similar)
        regularisation: float = 1e-3,
        max_samples: int = 5000,
        seed: int = 0,
    ) -> None:
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.min_effect_size = min_effect_size
        self.n_centres = n_centres
        self.regularisation = regularisation
        self.max_samples = max_samples
        self.seed = seed

    def fit(self, reference: np.ndarray, **context: Any) -> LSDDDetector:
        x = as_matrix(reference, "reference", min_rows=4)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(x))
        n_centres = min(self.n_centres, len(x) // 4)
        centre_rows, test_rows = order[:n_centres], np.sort(order[n_centres:])
        test_rows = test_rows[subsample(len(test_rows), self.max_samples, rng)]
        self.centres_ = x[centre_rows]
        self.bandwidth_ = median_bandwidth(squared_distances(self.centres_, self.centres_), rng)
        self.reference_ = x[test_rows]
        self.reference_blocks_ = block_ids(
            self.reference_,
            take(as_context(context.get("stream_ids"), len(x), "stream_ids"), test_rows),
            take(as_context(context.get("timestamps"), len(x), "timestamps"), test_rows),
        )
        return self

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        self.check_fitted()
        y = as_matrix(current, "current", dims=self.reference_.shape[1])
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
        indicators = reference_indicators(block_of, n_reference_blocks, self.n_permutations, rng)

        to_centres = gaussian_kernel(np.vstack([self.reference_, y_test]), self.centres_, self.bandwidth_)
        gram = gaussian_kernel(self.centres_, self.centres_, float(np.sqrt(2.0)) * self.bandwidth_).astype(np.float64)
        solve = np.linalg.inv(gram + self.regularisation * np.eye(len(gram)))
        n_ref = indicators.sum(axis=0, dtype=np.float64)
        n_cur = len(block_of) - n_ref
        weights = indicators / n_ref.astype(np.float32) - (1.0 - indicators) / n_cur.astype(np.float32)
        stats = self._lsdd((to_centres.T @ weights).astype(np.float64), gram, solve)
        observed = float(stats[0])
        p_value = permutation_p_value(observed, stats[1:])

        reference_mean = to_centres[: len(self.reference_)].mean(axis=0, dtype=np.float64)[:, None]
        norm = max(float(self._lsdd(reference_mean, gram, solve)[0]), 1e-12)
        effect = 100.0 * max(observed, 0.0) / norm
        return DriftResult(
            method=self.name,
            statistic=observed,
            p_value=p_value,
            threshold=self.alpha,
            **self.decide(
                p_value, effect, len(self.reference_), len(y_test),
                statistic=observed, critical=permutation_critical(stats[1:], self.alpha),
            ).fields(),
            n_reference=len(self.reference_),
            n_current=len(y),
            effect_size=effect,
            effect_unit="% of reference density squared L2 norm",
            evidence={
                "bandwidth": self.bandwidth_,
                "n_permutations": self.n_permutations,
                "n_current_tested": len(y_test),
                "n_centres": len(self.centres_),
            },
        )

    @staticmethod
    def _lsdd(h: np.ndarray, gram: np.ndarray, solve: np.ndarray) -> np.ndarray:
        theta = solve @ h
        return 2.0 * (h * theta).sum(axis=0) - (theta * (gram @ theta)).sum(axis=0)
