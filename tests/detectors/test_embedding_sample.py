"""Detectors on a store that keeps a sample of the embeddings: embedding detectors test (and flag) kept rows,
output detectors every row, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select

from shiftwatch.collector.service import log_predictions
from shiftwatch.collector.tables import Prediction
from shiftwatch.db import Database, utcnow
from shiftwatch.detectors import references
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.detectors.tables import DriftRun, FlaggedSample
from shiftwatch.errors import Invalid
from shiftwatch.settings import Settings
from tests.support.drift_scenario import REGISTRY, add_config, records

RATE = 0.25


def _log(db: Database, batch) -> None:
    log_predictions(db, batch, max_rows=10_000, retention_days=30, embedding_keep_rate=RATE)


def test_detectors_run_on_kept_rows_and_flag_rows_that_kept_their_embedding(
    db: Database, settings: Settings, digits_model
) -> None:
    start = (utcnow() - timedelta(hours=3)).replace(microsecond=0)
    _log(db, records(start, 1_200, seed=1))
    with db.session() as session:
        reference = references.pin_time_range(session, digits_model.id, start, start + timedelta(seconds=1_201))
        kept = session.scalars(
            select(Prediction.id).where(Prediction.embedding.is_not(None), Prediction.ts < start + timedelta(seconds=1_201))
        ).all()
        assert reference.n == len(kept) and 200 < reference.n < 400  # the kept rows of the range, each with its embedding
        assert reference.embeddings is not None and reference.embeddings.size == reference.n * 64
    mmd = add_config(db, digits_model.id, window_last_n=150)
    outputs = add_config(db, digits_model.id, detector="bbsd", window_last_n=400)

    later = start + timedelta(hours=1)
    _log(db, records(later, 1_200, shift=0.6, confidence=0.6, seed=2))
    result = run_due_detectors(db, settings, later + timedelta(minutes=30), registry=REGISTRY)
    assert result.runs == 2
    with db.session() as session:
        runs = {r.config_id: r for r in session.scalars(select(DriftRun))}
        # The embedding window counts kept embeddings (150 of ~600 kept); the output window counts rows.
        assert (runs[mmd].status, runs[mmd].n_current, runs[mmd].decision) == ("ok", 150, True)
        assert (runs[outputs].status, runs[outputs].n_current) == ("ok", 400)
        assert runs[mmd].n_reference == reference.n
        flagged = session.scalars(select(FlaggedSample.prediction_id)
                                  .join(DriftRun, DriftRun.id == FlaggedSample.drift_run_id)
                                  .where(DriftRun.config_id == mmd)).all()  # fmt: skip
        assert flagged
        embeddings = session.scalars(select(Prediction.embedding).where(Prediction.id.in_(flagged))).all()
        assert len(embeddings) == len(flagged) and all(e is not None and np.isfinite(e).all() for e in embeddings)


def test_a_range_with_too_few_kept_embeddings_is_refused_naming_the_keep_rate(db: Database, digits_model) -> None:
    start = (utcnow() - timedelta(hours=3)).replace(microsecond=0)
    _log(db, records(start, 120, seed=3))  # ~30 kept: under the 50 a reference needs
    with db.session() as session, pytest.raises(Invalid) as refused:
        references.pin_time_range(session, digits_model.id, start, start + timedelta(seconds=121))
    assert "SHIFTWATCH_EMBEDDING_KEEP_RATE" in str(refused.value) and "pin a longer range" in str(refused.value)
