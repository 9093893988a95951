"""Training runs: closing one (``finish_run``) and reading them back (for the CLI, the API and the console)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.db import Database, utcnow
from shiftwatch.errors import NotFound
from shiftwatch.retrain.tables import TrainingRun


def list_runs(session: Session, model_name: str, limit: int = 20) -> list[TrainingRun]:
    """The latest ``limit`` runs of ``model_name``, newest first."""
    model = registry.get_model(session, model_name)
    stmt = select(TrainingRun).where(TrainingRun.model_id == model.id).order_by(TrainingRun.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def get_run(session: Session, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise NotFound(f"training run {run_id} does not exist")
    return run


def finish_run(db: Database, run_id: int, started: float, **values: Any) -> None:
    """Set the run's final columns (status, metrics, error, ...) and its end time; ``started`` is a monotonic clock."""
    with db.session() as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
        for key, value in values.items():
            setattr(run, key, value)
        run.finished_at = utcnow()
        run.duration_s = round(time.monotonic() - started, 3)
