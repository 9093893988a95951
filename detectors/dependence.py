"""Serial dependence in camera streams: block labels for permutation tests, effective sample sizes for asymptotic ones.

Consecutive frames of one camera are not independent: a naive two-sample test then treats
n near-duplicates as n pieces of evidence and fires on a quiet stream (alibi-detect #549).
Both remedies here start from the integrated autocorrelation time ``tau`` of the window,
estimated per stream in time order and pooled over streams (with a pooled mean, so a
stream-level offset counts as long-range dependence):

- two-sample tests (MMD, LSDD, classifier, KS on components, all BBSD tests) permute
  *blocks* of ``1 + 3 (tau - 1)`` consecutive frames of one stream instead of single frames,
  so the permutation distribution sees the same within-block dependence as the observed
  split; a block test stays near-exact even when tau is underestimated a little, because
  within-block dependence is kept whatever its size;
- the labeled accuracy test uses the effective sample size ``n / tau`` (a two-proportion
  z-test on effective counts). For KS and chi-squared this correction was tried first and
  failed on the digits camera bench (13.5 % and 51 % false positives at alpha 5 %).

Without stream ids or timestamps the samples are taken as independent (tau = 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftwatch.errors import Invalid

# Block length per unit of autocorrelation time: at 3 tau adjacent blocks of an AR(1)
# stream with phi = 0.9 correlate at about 0.1, which keeps the FPR within a point of alpha
# (tests/detectors/test_streams.py).
BLOCK_FACTOR = 3.0
# Autocorrelations below 2 / sqrt(n) are indistinguishable from noise; summing stops there.
NOISE_LEVEL = 2.0
MAX_LAG = 1000


def as_time_values(timestamps: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Timestamps as sortable floats: numbers as given; datetimes, ISO 8601 text and datetime objects as microseconds."""
    times = np.asarray(timestamps)
    if times.dtype.kind in "iufb":
        return times.astype(np.float64)
    try:  # a stored state may hold them as text ("2026-12-06T22:58:43.339674"), a window as datetime64
        return times.astype("datetime64[us]").astype(np.int64).astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise Invalid("timestamps", f"must be numbers or ISO 8601 datetimes: {exc}") from None


def time_order(
    n: int, stream_ids: Sequence[Any] | np.ndarray | None, timestamps: Sequence[Any] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Sample indices sorted by (stream, time) and each sorted sample's stream code; None if nothing is known."""
    if stream_ids is None and timestamps is None:
        return None
    streams = np.zeros(n, dtype=np.int64)
    if stream_ids is not None:
        if len(stream_ids) != n:
            raise ValueError(f"stream_ids has {len(stream_ids)} entries for {n} samples")
        labels = np.array(["" if s is None else str(s) for s in stream_ids])
        _, streams = np.unique(labels, return_inverse=True)
    if timestamps is not None:
        if len(timestamps) != n:
            raise ValueError(f"timestamps has {len(timestamps)} entries for {n} samples")
        order = np.lexsort((np.arange(n), as_time_values(timestamps), streams))
    else:
        order = np.lexsort((np.arange(n), streams))
    return order, streams[order]


def autocorrelation_time(series: np.ndarray, order: np.ndarray, streams: np.ndarray) -> float:
    """Integrated autocorrelation time (>= 1) of each column, the largest over columns, pooled over streams."""
    values = np.asarray(series, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    values = values[order]
    n = len(values)
    if n < 8:
        return 1.0
    centred = values - values.mean(axis=0)
    variance = (centred**2).mean(axis=0)
    variance[variance == 0] = 1.0
    noise = NOISE_LEVEL / np.sqrt(n)
    tau = np.ones(values.shape[1])
    alive = np.ones(values.shape[1], dtype=bool)
    for lag in range(1, min(MAX_LAG, n // 2)):
        same = streams[lag:] == streams[:-lag]
        if same.sum() < 4:
            break
        rho = (centred[lag:][same] * centred[:-lag][same]).mean(axis=0) / variance
        alive &= rho > noise
        if not alive.any():
            break
        tau[alive] += 2.0 * rho[alive]
    return float(tau.max())


def summary_series(data: np.ndarray, n_directions: int = 3) -> np.ndarray:
    """A few scalar views of a window (its top principal directions) whose dependence stands for the window's."""
    x = np.asarray(data, dtype=np.float64)
    if x.ndim == 1:
        return x
    sample = x[:: max(1, len(x) // 2000)]
    centred = sample - sample.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (x - sample.mean(axis=0)) @ vt[:n_directions].T


def block_ids(
    data: np.ndarray,
    stream_ids: Sequence[Any] | np.ndarray | None = None,
    timestamps: Sequence[Any] | np.ndarray | None = None,
    min_blocks: int = 4,
) -> np.ndarray:
    """Block number of each sample (original order); consecutive frames of a stream share a block."""
    n = len(data)
    ordering = time_order(n, stream_ids, timestamps)
    if ordering is None:
        return np.arange(n, dtype=np.int64)
    order, streams = ordering
    tau = autocorrelation_time(summary_series(data), order, streams)
    length = int(np.ceil(1.0 + BLOCK_FACTOR * (tau - 1.0)))
    # Too few blocks leave no permutations to speak of; past this the test degrades to coarse.
    length = max(1, min(length, n // min_blocks))
    starts = np.flatnonzero(np.r_[True, streams[1:] != streams[:-1]])
    stream_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    position = np.arange(n) - stream_start
    block_in_order = np.unique(np.stack([streams, position // length]), axis=1, return_inverse=True)[1].ravel()
    blocks = np.empty(n, dtype=np.int64)
    blocks[order] = block_in_order
    return blocks


def effective_sample_size(
    series: np.ndarray,
    stream_ids: Sequence[Any] | np.ndarray | None = None,
    timestamps: Sequence[Any] | np.ndarray | None = None,
) -> float:
    """``n / tau``: as many independent samples as the window's serially dependent ones are worth."""
    n = len(series)
    ordering = time_order(n, stream_ids, timestamps)
    if ordering is None:
        return float(n)
    return n / autocorrelation_time(series, *ordering)
