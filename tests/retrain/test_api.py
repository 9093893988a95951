"""Training runs over HTTP: listed per model, fetched by id, 404 for what does not exist."""

from __future__ import annotations

from shiftwatch.collector.models import ModelVersion
from shiftwatch.db import Database
from shiftwatch.retrain.models import TrainingRun


def test_training_runs_are_listed_newest_first_and_fetched_by_id(api, db: Database, digits_model: ModelVersion) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        for status in ("failed", "succeeded"):
            session.add(TrainingRun(
                model_id=digits_model.model_id, base_version_id=digits_model.id, status=status, seed=0,
                labeled_snapshot_sha256="a" * 64, data_snapshot={"labeled": 10}, hyperparameters={"seed": 0},
                compress_steps=["ptq"], metrics={},
            ))  # fmt: skip
    listed = api.get("/v1/models/digits/training-runs")
    assert listed.status_code == 200
    assert [run["status"] for run in listed.json()] == ["succeeded", "failed"]
    one = api.get(f"/v1/training-runs/{listed.json()[1]['id']}")
    assert one.status_code == 200 and one.json()["compress_steps"] == ["ptq"]
    assert api.get("/v1/training-runs/999999").status_code == 404
    assert api.get("/v1/models/nope/training-runs").status_code == 404
