"""Aggregating one permutation test over several kernels (MMD-Agg style) with the family-wise error at alpha.

Every kernel's statistic is computed on the same permutations (column 0 the observed split).
Each kernel's row is standardised by its mean and standard deviation over all columns, and a
column's aggregated statistic is its largest standardised value over the kernels (Westfall and
Young's max-T; the permutation form of MMD-Agg's correction, Schrab et al. 2023). The
standardisation is a symmetric function of all columns and the columns are exchangeable under
no change, so ``#{columns with max-T >= observed max-T} / (1 + B)`` is a valid p-value: no
Bonferroni factor, and correlated kernels (neighbouring bandwidths) cost almost no power.
Max-T rather than min-p: with B permutations min-p ties at 1 / (1 + B) on every kernel that
ranks a column first, which floors the aggregated p-value well above that resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shiftwatch.detectors.permutation import RELATIVE_TIE_TOLERANCE


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The aggregated p-value; per kernel the observed standardised statistic and the critical raw statistic."""

    p_value: float
    standardised: np.ndarray  # observed column, per kernel
    critical: np.ndarray  # per kernel: the raw statistic at which the aggregated test rejects at alpha


def max_t_aggregate(stats: np.ndarray, alpha: float) -> Aggregate:
    """Max-T over kernels, calibrated on the same permutations; see the module docstring."""
    stats = np.asarray(stats, dtype=np.float64)
    centre = stats.mean(axis=1, keepdims=True)
    scale = np.maximum(stats.std(axis=1, keepdims=True), 1e-300)
    standardised = (stats - centre) / scale
    largest = standardised.max(axis=0)
    columns = largest.size
    tolerance = RELATIVE_TIE_TOLERANCE * max(abs(float(largest[0])), 1.0)
    p_value = float(np.count_nonzero(largest >= largest[0] - tolerance) / columns)
    # Rejection needs at most alpha * (1 + B) columns at or above the observed max-T: the
    # threshold is just above the (allowed + 1)-th largest permuted value.
    allowed = int(np.floor(alpha * columns + 1e-9)) - 1
    permuted = np.sort(largest[1:])[::-1]
    threshold = float("inf") if allowed < 0 else (float(permuted[allowed]) if allowed < permuted.size else float("-inf"))
    critical = (centre[:, 0] + threshold * scale[:, 0]) if np.isfinite(threshold) else np.full(len(stats), threshold)
    return Aggregate(p_value=p_value, standardised=standardised[:, 0], critical=critical)
