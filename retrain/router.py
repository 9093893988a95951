"""HTTP routes of retrain: read-only views of training runs (retraining itself is the `shiftwatch retrain` CLI)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from shiftwatch.dependencies import DbDep, Reader
from shiftwatch.retrain import runs
from shiftwatch.retrain.schemas import TrainingRunOut

router = APIRouter(prefix="/v1", tags=["retrain"])


@router.get("/models/{name}/training-runs", response_model=list[TrainingRunOut])
def list_training_runs(
    name: str,
    db: DbDep,
    _: Reader,
    limit: int = Query(20, ge=1, le=500),
) -> list[TrainingRunOut]:
    with db.session() as session:
        return [TrainingRunOut.model_validate(run) for run in runs.list_runs(session, name, limit)]


@router.get("/training-runs/{run_id}", response_model=TrainingRunOut)
def get_training_run(run_id: int, db: DbDep, _: Reader) -> TrainingRunOut:
    with db.session() as session:
        return TrainingRunOut.model_validate(runs.get_run(session, run_id))
