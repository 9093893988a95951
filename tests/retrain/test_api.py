"""Training runs over HTTP: listed per model, fetched by id, 404 for what does not exist."""

from __future__ import annotations

from shiftwatch.collector.tables import ModelVersion
from shiftwatch.db import Database
from shiftwatch.retrain.tables import TrainingRun


def add_runs(db: Database, digits_model: ModelVersion) -> None:
    """A failed then a succeeded training run of digits, as retrain records them."""
    with db.session() as session:
        for status in ("failed", "succeeded"):
            session.add(TrainingRun(
                model_id=digits_model.model_id, base_version_id=digits_model.id, status=status, seed=0,
                labeled_snapshot_sha256="a" * 64, data_snapshot={"labeled": 10}, hyperparameters={"seed": 0},
                compress_steps=["ptq"], metrics={},
            ))  # fmt: skip


def test_training_runs_are_listed_newest_first_and_fetched_by_id(api, db: Database, digits_model: ModelVersion) -> None:
    add_runs(db, digits_model)
    listed = api.get("/v1/models/digits/training-runs")
    assert listed.status_code == 200
    assert [run["status"] for run in listed.json()] == ["succeeded", "failed"]
    one = api.get(f"/v1/training-runs/{listed.json()[1]['id']}")
    assert one.status_code == 200 and one.json()["compress_steps"] == ["ptq"]
    assert api.get("/v1/training-runs/999999").status_code == 404
    assert api.get("/v1/models/nope/training-runs").status_code == 404


def test_retrain_runs_prints_a_table_by_default_and_the_api_list_with_json(db, db_url, settings, digits_model) -> None:
    """The CLI's one output convention: a table for people, --json for scripts (it printed JSON lines before)."""
    import json

    from typer.testing import CliRunner

    from shiftwatch import cli

    add_runs(db, digits_model)
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    table = CliRunner().invoke(cli.app, ["retrain", "runs", "--model", "digits"], env=env)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert "training runs" in lines[0] and "labeled snapshot" in table.stdout
    assert table.stdout.index("succeeded") < table.stdout.index("failed") and "aaaaaaaaaaaa" in table.stdout
    as_json = CliRunner().invoke(cli.app, ["retrain", "runs", "--model", "digits", "--json"], env=env)
    assert [run["status"] for run in json.loads(as_json.stdout)] == ["succeeded", "failed"]
