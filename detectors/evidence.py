"""Evidence a person can act on: which embedding dimensions moved most, which samples look least like the reference."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from shiftwatch.detectors.base import AtypicalSample, DriftResult

__all__ = ["AtypicalSample", "atypical_samples", "detector_atypical", "knn_scores", "shifted_dimensions"]

TOP_DIMENSIONS = 5
TOP_SAMPLES = 20
# Nearest-neighbour distances to at most this many reference rows: 2,000 x 64-d is a few ms,
# and beyond it the ranking of atypical samples barely changes.
MAX_REFERENCE_ROWS = 2000
NEIGHBOURS = 5


def shifted_dimensions(reference: np.ndarray, current: np.ndarray, top: int = TOP_DIMENSIONS) -> list[dict[str, Any]]:
    """Dimensions with the largest standardized mean difference (current - reference, in reference std units)."""
    scale = reference.std(axis=0) + 1e-12
    shift = (current.mean(axis=0) - reference.mean(axis=0)) / scale
    order = np.argsort(-np.abs(shift))[:top]
    return [{"dimension": int(d), "shift_in_std": round(float(shift[d]), 4)} for d in order]


def detector_atypical(result: DriftResult, n_current: int) -> list[AtypicalSample]:
    """The samples the detector itself ranked most atypical, each with its own score (``DriftResult.atypical``)."""
    return [sample for sample in result.atypical if 0 <= sample.index < n_current]


def knn_scores(reference: np.ndarray, current: np.ndarray, seed: int = 0) -> np.ndarray:
    """Mean distance to the k nearest reference samples, divided by the reference's own typical value.

    A score near 1 is as typical as a reference sample; 3 is three times farther than usual.
    """
    rng = np.random.default_rng(seed)
    if len(reference) > MAX_REFERENCE_ROWS:
        reference = reference[rng.choice(len(reference), MAX_REFERENCE_ROWS, replace=False)]
    k = min(NEIGHBOURS, len(reference) - 1)
    index = NearestNeighbors(n_neighbors=k + 1).fit(reference)
    # Reference-to-reference: skip the sample itself (distance 0, the first neighbour).
    ref_distances, _ = index.kneighbors(reference)
    typical = float(np.median(ref_distances[:, 1:].mean(axis=1))) + 1e-12
    cur_distances, _ = index.kneighbors(current, n_neighbors=k)
    return cur_distances.mean(axis=1) / typical


def atypical_samples(scores: np.ndarray, top: int = TOP_SAMPLES) -> list[AtypicalSample]:
    order = np.argsort(-scores)[:top]
    return [AtypicalSample(index=int(i), score=float(scores[i])) for i in order]


def to_jsonable(value: Any) -> Any:
    """Detector evidence as plain JSON types (numpy arrays and scalars converted); anything else is a bug."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"evidence value of type {type(value).__name__} is not JSON")
