"""Permutation tests done as matrix products: group indicators for all permutations at once, and honest p-values."""

from __future__ import annotations

import numpy as np

# Float noise between the observed column and an identical permuted one must not drop a tie.
RELATIVE_TIE_TOLERANCE = 1e-6


def permutation_p_value(observed: float, permuted: np.ndarray) -> float:
    """``(1 + #{permuted >= observed}) / (1 + B)``: counts the observed split as one permutation, so never 0.

    alibi-detect #960: leaving the observed statistic out gives p = 0 and a test that
    rejects more often than alpha.
    """
    permuted = np.asarray(permuted, dtype=np.float64)
    tolerance = RELATIVE_TIE_TOLERANCE * max(abs(float(observed)), 1e-12)
    exceed = int(np.count_nonzero(permuted >= observed - tolerance))
    return (1 + exceed) / (1 + permuted.size)


def reference_indicators(
    block_of: np.ndarray, n_reference_blocks: int, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """(N, 1 + B) float32 matrix: 1 where a sample sits in the reference group; column 0 is the observed split.

    Blocks ``0 .. n_reference_blocks - 1`` are the reference's; each permutation draws that
    many blocks at random as its reference group. With one sample per block this is the
    ordinary permutation test; with stream blocks it is the block permutation test.
    """
    n_blocks = int(block_of.max()) + 1
    keys = rng.random((n_permutations, n_blocks))
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    chosen = np.vstack([np.arange(n_blocks) < n_reference_blocks, ranks < n_reference_blocks])
    return np.ascontiguousarray(chosen[:, block_of].T, dtype=np.float32)


def permutation_critical(permuted: np.ndarray, level: float) -> float:
    """The smallest statistic whose permutation p-value is at most ``level`` (inf when none can be)."""
    permuted = np.sort(np.asarray(permuted, dtype=np.float64))[::-1]
    allowed = int(np.floor(level * (1 + permuted.size) + 1e-9)) - 1  # permuted values that may reach it
    if allowed < 0:
        return float("inf")
    return float(permuted[min(allowed, permuted.size - 1)]) if allowed < permuted.size else float("-inf")
