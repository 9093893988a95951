"""Per-column two-sample KS tests (with effective sample sizes on streams) and their multiple-testing aggregation."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats

Correction = Literal["bonferroni", "fdr"]


def ks_columns(
    reference: np.ndarray,
    current: np.ndarray,
    n_eff_reference: np.ndarray | None = None,
    n_eff_current: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """KS distance and p-value of each column. With effective sizes the p-value uses them instead of n and m.

    Without them: scipy's exact/asymptotic choice. With them: the two-sample Kolmogorov law at
    ``n_e m_e / (n_e + m_e)``, scipy's own asymptotic form, so dependent frames count as what they are worth.
    """
    result = stats.ks_2samp(reference, current, axis=0)
    distance = np.atleast_1d(np.asarray(result.statistic, dtype=np.float64))
    p_value = np.atleast_1d(np.asarray(result.pvalue, dtype=np.float64))
    if n_eff_reference is not None or n_eff_current is not None:
        n = np.broadcast_to(len(reference) if n_eff_reference is None else n_eff_reference, distance.shape)
        m = np.broadcast_to(len(current) if n_eff_current is None else n_eff_current, distance.shape)
        size = np.maximum(1.0, np.round(n * m / (n + m)))
        p_value = stats.kstwo.sf(distance, size)
    return distance, np.clip(p_value, 0.0, 1.0)


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
