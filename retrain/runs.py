"""Reading training runs back (for the CLI, the API and the console)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
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
