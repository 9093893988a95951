"""Which predictions keep their full embedding: a per-id hash sample, plus every rollout row.

Every row keeps its ids, class, confidence and probabilities; the embedding (2 KiB at 512-d,
~86 % of a row's 3.2 KiB on PostgreSQL: bench/embedding_keep.py) is stored only where it pays:

- a random sample of each version's rows at ``rate`` (SHIFTWATCH_EMBEDDING_KEEP_RATE), decided by
  a hash of the prediction id, so a replay, a retry or another replica decides the same way;
- every shadow and canary row, and every production row of a model while one of its versions is in
  shadow or canary (both halves of the rollout's pairs);
- flagged rows and labeling candidates follow: the embedding detectors test (and flag) kept rows only,
  and the labeling policy spreads its picks over kept rows (``labeling.selection.diverse_top``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable

import numpy as np
from sqlalchemy import select

from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.db import Database

ROLLOUT_STATES = ("shadow", "canary")
# A state change reaches ingest within this many seconds: a rollout's first pairs may miss their
# embeddings for that long (the sample still covers them at the base rate).
ROLLOUT_CACHE_SECONDS = 5.0
_HASH_SPAN = float(2**64)


def sample_point(prediction_id: bytes) -> float:
    """Where an id falls in [0, 1): an unkeyed blake2b of its 16 bytes, the same on every host."""
    return int.from_bytes(hashlib.blake2b(prediction_id, digest_size=8).digest(), "big") / _HASH_SPAN


def sampled(ids: np.ndarray, rate: float) -> np.ndarray:
    """A boolean per id ((n, 16) uint8 UUID bytes): in the per-id random sample at ``rate``."""
    if rate >= 1.0:
        return np.ones(len(ids), dtype=bool)
    if rate <= 0.0:
        return np.zeros(len(ids), dtype=bool)
    return np.fromiter((sample_point(row.tobytes()) < rate for row in ids), dtype=bool, count=len(ids))


def keeps_embedding(
    ids: np.ndarray, routes: np.ndarray, models: np.ndarray, rate: float, models_in_rollout: Iterable[str]
) -> np.ndarray:
    """A boolean per row: does it keep its embedding (sampled, a rollout row, or its model is in rollout)."""
    in_rollout = np.isin(models.astype(str), list(models_in_rollout))
    return sampled(ids, rate) | (routes.astype(str) != "production") | in_rollout


class RolloutModels:
    """The names of models with a version in shadow or canary, read at most every few seconds per process."""

    def __init__(self, max_age_s: float = ROLLOUT_CACHE_SECONDS) -> None:
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._read: dict[str, tuple[float, frozenset[str]]] = {}  # database url -> (monotonic time, names)

    def names(self, db: Database) -> frozenset[str]:
        url = str(db.engine.url)
        with self._lock:
            held = self._read.get(url)
        if held is not None and time.monotonic() - held[0] < self.max_age_s:
            return held[1]
        stmt = select(Model.name).join(ModelVersion, ModelVersion.model_id == Model.id)
        with db.session() as session:
            names = frozenset(session.scalars(stmt.where(ModelVersion.state.in_(ROLLOUT_STATES)).distinct()))
        with self._lock:
            self._read[url] = (time.monotonic(), names)
        return names

    def forget(self) -> None:
        """Drop what was read (tests that move a version into rollout and ingest at once)."""
        with self._lock:
            self._read.clear()


ROLLOUT_MODELS = RolloutModels()
