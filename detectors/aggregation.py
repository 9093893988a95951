"""Aggregating one permutation test over several kernels (MMD-Agg style) with the family-wise error at alpha.

Every kernel's statistic is computed on the same permutations (column 0 the observed split).
Each column gets, per kernel, its permutation p-value among all columns; the aggregated
statistic of a column is its smallest p-value over the kernels (min-p, Westfall and Young
1993; the permutation form of MMD-Agg's correction, Schrab et al. 2023). Because all columns
are exchangeable under no change and the observed one is ranked among them like any other,
``#{columns with min-p <= observed min-p} / (1 + B)`` is a valid p-value: no Bonferroni
factor, and correlated kernels (neighbouring bandwidths) cost almost no power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shiftwatch.detectors.permutation import RELATIVE_TIE_TOLERANCE, permutation_critical


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The aggregated p-value; per kernel the observed p-value and the critical statistic at the corrected level."""

    p_value: float
    kernel_p_values: np.ndarray
    kernel_level: float  # per-kernel p-value at which the aggregated test rejects at alpha
    critical: np.ndarray  # per kernel: the statistic that reaches ``kernel_level``


def column_p_values(stats: np.ndarray) -> np.ndarray:
    """(L, 1 + B) statistics -> per row, each column's share of columns at least as large (itself included)."""
    stats = np.asarray(stats, dtype=np.float64)
    columns = stats.shape[1]
    out = np.empty_like(stats)
    for row, values in enumerate(stats):
        ordered = np.sort(values)
        tolerance = RELATIVE_TIE_TOLERANCE * np.maximum(np.abs(values), 1e-12)
        out[row] = (columns - np.searchsorted(ordered, values - tolerance, side="left")) / columns
    return out


def min_p_aggregate(stats: np.ndarray, alpha: float) -> Aggregate:
    """Min-p over kernels, calibrated on the same permutations; see the module docstring."""
    p = column_p_values(stats)
    smallest = p.min(axis=0)
    columns = smallest.size
    p_value = float(np.count_nonzero(smallest <= smallest[0] * (1 + 1e-9)) / columns)
    # The largest per-kernel level whose min-p rejects in at most alpha of all columns.
    ordered = np.sort(smallest)
    allowed = int(np.floor(alpha * columns + 1e-9))
    level = float(ordered[allowed - 1]) if allowed >= 1 else 0.0
    if allowed < columns and allowed >= 1 and ordered[allowed] == level:
        level = float(ordered[ordered < level].max()) if np.any(ordered < level) else 0.0
    critical = np.array([permutation_critical(row[1:], level) for row in np.asarray(stats, dtype=np.float64)])
    return Aggregate(p_value=p_value, kernel_p_values=p[:, 0], kernel_level=level, critical=critical)
