"""HTTP routes of retrain: read-only views of training runs (retraining itself is the `shiftwatch retrain` CLI)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from shiftwatch.auth import Principal, require
from shiftwatch.db import Database
from shiftwatch.dependencies import get_db
from shiftwatch.retrain import runs
from shiftwatch.retrain.schemas import TrainingRunOut

router = APIRouter(prefix="/v1", tags=["retrain"])


@router.get("/models/{name}/training-runs", response_model=list[TrainingRunOut])
def list_training_runs(
    name: str,
    limit: int = Query(20, ge=1, le=500),
    db: Database = Depends(get_db),
    _: Principal = Depends(require("read")),
) -> list[TrainingRunOut]:
    with db.session() as session:
        return [TrainingRunOut.model_validate(run) for run in runs.list_runs(session, name, limit)]


@router.get("/training-runs/{run_id}", response_model=TrainingRunOut)
def get_training_run(run_id: int, db: Database = Depends(get_db), _: Principal = Depends(require("read"))) -> TrainingRunOut:
    with db.session() as session:
        return TrainingRunOut.model_validate(runs.get_run(session, run_id))
