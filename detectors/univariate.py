"""Per-column two-sample KS tests (asymptotic, or block-permutation on streams) and their multiple-testing aggregation."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats

from shiftwatch.detectors.permutation import permutation_p_value, reference_indicators

Correction = Literal["bonferroni", "fdr"]


def ks_columns(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KS distance and p-value of each column (scipy: exact for small windows, asymptotic beyond)."""
    result = stats.ks_2samp(reference, current, axis=0)
    distance = np.atleast_1d(np.asarray(result.statistic, dtype=np.float64))
    p_value = np.atleast_1d(np.asarray(result.pvalue, dtype=np.float64))
    return distance, np.clip(p_value, 0.0, 1.0)


def ks_block_permutation(
    reference: np.ndarray,
    current: np.ndarray,
    reference_blocks: np.ndarray,
    current_blocks: np.ndarray,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, float]:
    """KS distance and block-permutation p-value of each column, and one p-value for the largest distance.

    The empirical CDFs of every permutation are cumulative sums of the group indicators
    along each column's sort order: one (N, 1 + B) pass per column, no loop over permutations.
    The global p-value permutes the *largest* KS distance over columns (max-statistic, family-
    wise exact): with few stream blocks the smallest permutation p-value is coarse, and a
    Bonferroni or BH factor over 32 components would make rejection impossible.
    """
    pooled = np.vstack([reference, current]).astype(np.float64)
    indicators = group_indicators(reference_blocks, current_blocks, n_permutations, rng)
    n_ref = indicators.sum(axis=0)
    n_cur = len(pooled) - n_ref
    distance = np.empty(pooled.shape[1])
    p_value = np.empty(pooled.shape[1])
    largest = np.zeros(indicators.shape[1])
    for column in range(pooled.shape[1]):
        order = np.argsort(pooled[:, column], kind="stable")
        values = pooled[order, column]
        step_ends = np.flatnonzero(np.r_[values[1:] != values[:-1], True])  # evaluate CDFs between ties only
        below_ref = np.cumsum(indicators[order], axis=0)[step_ends]
        below_all = (step_ends + 1.0)[:, None]
        gaps = np.abs(below_ref / n_ref - (below_all - below_ref) / n_cur).max(axis=0)
        distance[column] = gaps[0]
        p_value[column] = permutation_p_value(gaps[0], gaps[1:])
        np.maximum(largest, gaps, out=largest)
    return distance, p_value, permutation_p_value(largest[0], largest[1:])


def group_indicators(
    reference_blocks: np.ndarray, current_blocks: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """(N, 1 + B) float64 reference-group indicators over the stacked windows' blocks (column 0 observed)."""
    n_reference_blocks = int(reference_blocks.max()) + 1
    block_of = np.concatenate([reference_blocks, current_blocks + n_reference_blocks])
    return reference_indicators(block_of, n_reference_blocks, n_permutations, rng).astype(np.float64)


def adjust(p_values: np.ndarray, correction: Correction) -> np.ndarray:
    """Adjusted p-values: Bonferroni (family-wise) or Benjamini-Hochberg (false discovery rate)."""
    p = np.asarray(p_values, dtype=np.float64)
    k = len(p)
    if correction == "bonferroni":
        return np.minimum(1.0, p * k)
    if correction != "fdr":
        raise ValueError(f"unknown correction {correction!r}")
    order = np.argsort(p)
    scaled = p[order] * k / np.arange(1, k + 1)
    monotone = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(k)
    adjusted[order] = np.minimum(1.0, monotone)
    return adjusted


def global_p_value(p_values: np.ndarray, correction: Correction) -> float:
    """One p-value for 'any column shifted': the smallest adjusted one (Bonferroni, or Simes for FDR)."""
    return float(adjust(p_values, correction).min())


def ks_critical_points(level: float, n_reference: int, n_current: int) -> float:
    """Asymptotic two-sample KS critical distance at ``level``, in CDF points: c(level) sqrt(1/n + 1/m)."""
    level = min(max(level, 1e-300), 1.0)
    return 100.0 * float(np.sqrt(-0.5 * np.log(level / 2.0)) * np.sqrt(1.0 / n_reference + 1.0 / n_current))
