"""Embeddings kept where they pay: a per-id sample at the configured rate, every rollout row, on both backends."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import select

from shiftwatch.collector import queries, registry
from shiftwatch.collector.embedding_keep import ROLLOUT_MODELS, sampled
from shiftwatch.collector.service import log_predictions
from shiftwatch.collector.tables import Prediction
from shiftwatch.db import Database
from shiftwatch.settings import Settings
from tests.support.collector import records


def _ids(n: int, seed: int) -> np.ndarray:
    """``n`` random version-4 UUIDs as (n, 16) bytes, from a seeded generator."""
    raw = np.random.default_rng(seed).integers(0, 256, size=(n, 16), dtype=np.uint8)
    return np.stack([np.frombuffer(uuid.UUID(bytes=row.tobytes(), version=4).bytes, dtype=np.uint8) for row in raw])


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5])
def test_rate_is_honoured_within_binomial_bounds_for_every_seed(rate: float) -> None:
    n = 20_000
    for seed in range(5):
        kept = int(sampled(_ids(n, seed), rate).sum())
        bound = 4.5 * np.sqrt(n * rate * (1 - rate))  # 4.5 sigma: ~1e-5 per check
        assert abs(kept - n * rate) < bound, (seed, kept)


def test_the_sample_is_a_pure_function_of_the_id() -> None:
    ids = _ids(5_000, 11)
    first = sampled(ids, 0.1)
    assert np.array_equal(first, sampled(ids.copy(), 0.1))  # a replay or another replica decides the same
    assert np.array_equal(first[::-1], sampled(ids[::-1], 0.1))  # whatever order or batch the rows come in
    assert not (sampled(ids, 0.05) & ~first).any()  # nested: a lower rate keeps a subset
    assert sampled(ids, 1.0).all() and not sampled(ids, 0.0).any()


def _log(db: Database, batch, rate: float):
    return log_predictions(db, batch, max_rows=10_000, retention_days=30, embedding_keep_rate=rate)


def _stored(db: Database) -> dict[uuid.UUID, Prediction]:
    with db.session() as session:
        return {p.id: p for p in session.scalars(select(Prediction))}


def test_ingest_keeps_the_sampled_embeddings_and_every_rows_outputs(db: Database, digits_model) -> None:
    batch = records(3_000, seed=3)
    assert _log(db, batch, 0.1).stored == 3_000
    stored = _stored(db)
    expected = sampled(np.stack([np.frombuffer(r.id.bytes, np.uint8) for r in batch]), 0.1)
    kept = {r.id for r, keep in zip(batch, expected) if keep}
    assert {i for i, p in stored.items() if p.embedding is not None} == kept
    assert 200 < len(kept) < 400
    assert all(p.probabilities is not None and p.confidence > 0 for p in stored.values())
    by_id = {r.id: r for r in batch}
    assert all(np.array_equal(stored[i].embedding, by_id[i].embedding) for i in kept)
    # A replay of the same batch stores nothing new and keeps exactly the same embeddings.
    assert _log(db, batch, 0.1).stored == 0
    assert {i for i, p in _stored(db).items() if p.embedding is not None} == kept


def test_rollout_rows_keep_their_embeddings(db: Database, digits_model) -> None:
    with db.session() as session:
        registry.register_version(session, "digits", "v2", embedding_dim=64, state="candidate")
    ROLLOUT_MODELS.forget()
    shadow = records(300, seed=4, version="v2", route="shadow")
    _log(db, shadow, 0.1)
    assert all(p.embedding is not None for p in _stored(db).values())  # the candidate's half of every pair

    with db.session() as session:
        registry.get_version(session, "digits", "v2").state = "shadow"
    ROLLOUT_MODELS.forget()
    production = records(300, seed=5)
    _log(db, production, 0.1)  # the production half of the pairs: the model is in rollout
    stored = _stored(db)
    assert all(stored[r.id].embedding is not None for r in production)

    with db.session() as session:
        registry.get_version(session, "digits", "v2").state = "rejected"
    ROLLOUT_MODELS.forget()
    after = records(1_000, seed=6)
    _log(db, after, 0.1)  # the rollout is over: back to the sample
    stored = _stored(db)
    assert 50 < sum(stored[r.id].embedding is not None for r in after) < 160


def test_embedding_windows_read_kept_rows_and_output_windows_read_all(db: Database, digits_model) -> None:
    _log(db, records(2_000, seed=7), 0.2)
    with db.session() as session:
        everything = queries.window(session, digits_model.id, last_n=500)
        embedded = queries.window(session, digits_model.id, last_n=100, embedded=True)
    assert len(everything) == 500 and everything.embeddings is None and everything.probabilities is not None
    assert sum(everything.embedding(i) is not None for i in range(500)) in range(50, 160)
    assert len(embedded) == 100 and embedded.embeddings is not None and embedded.embeddings.shape == (100, 64)
    # The newest 100 kept rows: they reach further back than the newest 100 rows.
    assert embedded.ts[0] < everything.ts[-100]


def test_the_api_stores_a_sample_at_the_default_rate(db: Database, settings: Settings, digits_model) -> None:
    from fastapi.testclient import TestClient

    from shiftwatch.app import create_app
    from tests.support.collector import as_json

    default = Settings.model_fields["embedding_keep_rate"].default
    assert default == 0.05
    batch = records(2_000, seed=8)
    with TestClient(create_app(settings.model_copy(update={"embedding_keep_rate": default}), db)) as api:
        api.post("/v1/predictions", json=as_json(batch)).raise_for_status()
    kept = sum(p.embedding is not None for p in _stored(db).values())
    assert 60 < kept < 140  # 100 expected, sd 9.7
