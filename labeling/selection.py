"""The selection policy: which predictions are worth a person's time, why, and in what order.

Pure numpy over candidates, no database: ``policy.py`` feeds it rows, ``queue.py`` stores what it picks,
``bench/labeling_policy.py`` runs it on arrays. Four sources, each with a reason and a
priority band (tasks reach Label Studio highest priority first):

* ``disagreement`` 3..4: shadow/canary and production disagree (the rollout controller calls
  ``policy.enqueue``); a disagreement is a known error of one of the two models.
* ``flagged`` 2..3: the drift detectors' most atypical samples, ranked by their score.
* ``uncertain`` 1..2: small top-1/top-2 probability margin (uncertainty sampling).
* ``random`` 0.5: a uniform slice, so accuracy measured on labels stays unbiased.

Within a batch the informative picks are made diverse with k-center greedy on embeddings, so
ten near-identical frames of one camera do not eat the budget.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

PRIORITY_BASE = {"disagreement": 3.0, "flagged": 2.0, "uncertain": 1.0, "random": 0.5, "weighted": 0.5}
# A margin of 0.5 means top-1 beats top-2 by 50 points: above it a label rarely changes the model.
MARGIN_THRESHOLD = 0.5
# Share of each batch drawn uniformly at random (for unbiased label-based metrics).
RANDOM_FRACTION = 0.1
# k-center greedy runs over the top POOL_FACTOR * k candidates by priority: wide enough to skip
# near-duplicates, narrow enough that diversity never trades away the most informative samples.
POOL_FACTOR = 4


@dataclass(frozen=True, slots=True)
class Candidate:
    """A prediction that could be queued, with what the policy needs and what the queue copies."""

    prediction_id: uuid.UUID
    ts: datetime
    model_version_id: int
    predicted_class: int
    confidence: float
    input_ref: str | None
    embedding: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    reason: str = "uncertain"
    priority: float = 1.0
    evidence: dict[str, Any] = field(default_factory=dict)


def margins(probabilities: np.ndarray | None, confidence: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row; from the confidence alone when probabilities are absent.

    Without the full vector the runner-up is bounded by 1 - confidence, so the margin is at
    least 2 * confidence - 1; that bound is what we use.
    """
    if probabilities is not None and probabilities.shape[1] >= 2:
        top2 = np.sort(probabilities, axis=1)[:, -2:]
        return (top2[:, 1] - top2[:, 0]).astype(np.float64)
    return np.clip(2.0 * np.asarray(confidence, dtype=np.float64) - 1.0, 0.0, 1.0)


def uncertainty_priorities(margin: np.ndarray, threshold: float = MARGIN_THRESHOLD) -> np.ndarray:
    """Priority in the ``uncertain`` band (1 + (1 - margin)) for rows under the threshold, NaN otherwise."""
    priority = PRIORITY_BASE["uncertain"] + (1.0 - np.clip(margin, 0.0, 1.0))
    return np.where(margin < threshold, priority, np.nan)


def flagged_priorities(scores: np.ndarray) -> np.ndarray:
    """Priority in the ``flagged`` band from detector scores, by rank: detectors' scores have different units."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores
    ranks = scores.argsort().argsort().astype(np.float64)
    return PRIORITY_BASE["flagged"] + (ranks + 1.0) / (scores.size + 1.0)


def k_center_greedy(
    embeddings: np.ndarray, k: int, *, existing: np.ndarray | None = None, first: int = 0
) -> list[int]:
    """Indices of ``k`` rows, each the farthest from everything chosen so far (and from ``existing``).

    Starts at ``first`` (the highest-priority row) when nothing exists yet. O(n * k) distance
    updates, so a pool of a few thousand 512-d rows takes milliseconds.
    """
    n = embeddings.shape[0]
    if k <= 0 or n == 0:
        return []
    points = embeddings.astype(np.float32, copy=False)
    if existing is not None and len(existing):
        nearest = _min_sq_distances(points, existing.astype(np.float32, copy=False))
        chosen = [int(np.argmax(nearest))]
    else:
        chosen = [first]
        nearest = np.full(n, np.inf, dtype=np.float32)
    while True:
        step = np.sum((points - points[chosen[-1]]) ** 2, axis=1)
        nearest = np.minimum(nearest, step)
        nearest[chosen] = -1.0
        if len(chosen) >= min(k, n):
            return chosen
        chosen.append(int(np.argmax(nearest)))


def _min_sq_distances(points: np.ndarray, centers: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Squared distance from each point to its nearest center, in chunks to bound memory."""
    out = np.empty(points.shape[0], dtype=np.float32)
    center_norms = np.sum(centers**2, axis=1)
    for start in range(0, points.shape[0], chunk):
        block = points[start : start + chunk]
        d = np.sum(block**2, axis=1)[:, None] - 2.0 * block @ centers.T + center_norms[None, :]
        out[start : start + chunk] = np.maximum(d.min(axis=1), 0.0)
    return out


def diverse_top(
    candidates: list[Candidate], k: int, *, existing: np.ndarray | None = None, pool_factor: int = POOL_FACTOR
) -> list[Candidate]:
    """The ``k`` most useful candidates: the top of the priority order, spread out by k-center greedy.

    Where only a sample of rows kept its embedding (``collector.embedding_keep``), flagged and
    disagreeing candidates without one are taken first by priority, and the rest is spread over the
    top of the kept ones (a uniform random subset of the ranking): each pick keeps its embedding for
    the next batch's spread. With fewer kept than places, candidates are taken by priority alone.
    """
    if k <= 0 or not candidates:
        return []
    ranked = sorted(candidates, key=lambda c: -c.priority)
    embedded = [c for c in ranked if c.embedding is not None]
    if embedded and len(embedded) < len(ranked):
        first = [c for c in ranked if c.embedding is None and c.priority >= PRIORITY_BASE["flagged"]][:k]
        if len(embedded) >= k - len(first):
            return first + diverse_top(embedded, k - len(first), existing=existing, pool_factor=pool_factor)
    pool = ranked[: max(k, pool_factor * k)]
    if len(pool) <= k or any(c.embedding is None for c in pool):
        return pool[:k]
    embeddings = np.stack([c.embedding for c in pool if c.embedding is not None])
    return [pool[i] for i in k_center_greedy(embeddings, k, existing=existing, first=0)]


def merge_by_reason(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per prediction: the one from the highest priority band wins, keeping the others' evidence."""
    best: dict[uuid.UUID, Candidate] = {}
    for candidate in candidates:
        held = best.get(candidate.prediction_id)
        if held is None:
            best[candidate.prediction_id] = candidate
            continue
        winner, loser = (candidate, held) if candidate.priority > held.priority else (held, candidate)
        evidence = {**winner.evidence, "also": sorted({*winner.evidence.get("also", []), loser.reason})}
        best[candidate.prediction_id] = replace(winner, evidence=evidence)
    return list(best.values())


def plan_batch(
    informative: list[Candidate],
    everyone: Sequence[Candidate],
    budget: int,
    *,
    rng: np.random.Generator,
    random_fraction: float = RANDOM_FRACTION,
    existing: np.ndarray | None = None,
) -> list[Candidate]:
    """Choose up to ``budget`` candidates: a uniform random slice of ``everyone``, then diverse informative ones.

    The random slice is drawn first and from all predictions (informative or not), so it
    stays a uniform sample; a prediction drawn there is recorded with reason ``random``.
    """
    if budget <= 0:
        return []
    n_random = min(len(everyone), int(round(random_fraction * budget)))
    picks = rng.choice(len(everyone), size=n_random, replace=False) if n_random else np.empty(0, dtype=int)
    slice_ = [
        replace(everyone[i], reason="random", priority=PRIORITY_BASE["random"], evidence={"slice": random_fraction})
        for i in sorted(int(i) for i in picks)
    ]
    taken = {c.prediction_id for c in slice_}
    rest = [c for c in merge_by_reason(informative) if c.prediction_id not in taken]
    chosen = diverse_top(rest, budget - len(slice_), existing=existing)
    return chosen + slice_
