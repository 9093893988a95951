"""Labels without Label Studio: ``shiftwatch labeling import FILE`` and ``POST /v1/labels``, all rows or none."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from shiftwatch import cli as root_cli
from shiftwatch.collector import registry
from shiftwatch.labeling.policy import Budget, enqueue, select_for_labeling
from shiftwatch.labeling.queries import labeled_samples
from shiftwatch.labeling.queue import queue_status
from shiftwatch.labeling.tables import Label, LabelTask
from shiftwatch.rollout.handoff import known_labels
from shiftwatch_client.records import PredictionRecord
from tests.support.collector import store_predictions
from tests.support.labeling import fake_ref

CLASSES = ["stop", "yield", "speed"]


@pytest.fixture
def signs(db, settings) -> dict[str, PredictionRecord]:
    """Model ``signs`` (v1 production, v2 a candidate) and predictions on every route, by name."""
    with db.session() as session:
        registry.register_model(session, "signs", CLASSES)
        registry.register_version(session, "signs", "v1", embedding_dim=4, state="production")
        registry.register_version(session, "signs", "v2", embedding_dim=4, state="canary")
    ts = datetime.now(UTC) - timedelta(minutes=10)
    rng = np.random.default_rng(0)

    def record(name: str, version: str, route: str, request_id: str | None = None, ref: str | None = None) -> PredictionRecord:
        probs = rng.dirichlet(np.ones(3)).astype(np.float32)
        return PredictionRecord(
            model="signs", version=version, route=route, request_id=request_id, input_ref=ref or fake_ref(name),
            predicted_class=int(probs.argmax()), confidence=float(probs.max()), probabilities=probs,
            embedding=rng.normal(size=4).astype(np.float32), ts=ts + timedelta(seconds=len(name)),
        )

    named = {
        "audit": record("audit", "v1", "production"),
        "by_id": record("by_id", "v1", "production"),
        "by_ref": record("by_ref", "v1", "production"),
        "paired": record("paired", "v1", "production", request_id="req-7", ref=fake_ref("pair")),
        "shadow": record("shadow", "v2", "shadow", request_id="req-7", ref=fake_ref("pair")),
        "canary": record("canary", "v2", "canary"),
        "no_input": record("no_input", "v1", "production"),
    }
    named["no_input"] = replace(named["no_input"], input_ref=None)
    for version in ("v1", "v2"):
        store_predictions(db, settings, [r for r in named.values() if r.version == version])
    with db.session() as session:  # the audit slice picked this one: a label of it counts for unbiased accuracy
        version_id = registry.get_version(session, "signs", "v1").id
        assert enqueue(session, version_id, [named["audit"].id], "random").queued == 1
    return named


def _env(db_url: str, settings) -> dict[str, str]:
    return {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}


def _labels(db) -> dict[uuid.UUID, tuple[int, str, str, str]]:
    """prediction id -> (class, annotator, source, the task's reason)."""
    with db.session() as session:
        rows = session.execute(select(Label, LabelTask).join(LabelTask, LabelTask.id == Label.task_id)).tuples()
        return {label.prediction_id: (label.label, label.annotator, label.source, task.reason) for label, task in rows}


def test_cli_import_lands_labels_where_label_studio_labels_land(db, db_url, settings, signs, tmp_path: Path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(
        "prediction_id,request_id,input_ref,label,annotator\n"
        f"{signs['audit'].id},,,yield,\n"
        f"{signs['by_id'].id},,,2,ann\n"
        f",,{signs['by_ref'].input_ref},stop,\n"
        f",req-7,,speed,\n"
        f"{signs['canary'].id},,,0,\n"
    )
    runner = CliRunner()
    done = runner.invoke(root_cli.app, ["labeling", "import", str(csv_file), "--model", "signs", "--json"],
                         env=_env(db_url, settings))
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"model": "signs", "rows": 5, "labeled": 5, "updated": 0, "unchanged": 0,
                                       "new_tasks": 4, "audit": 1, "unlabeled_rows": 0}
    labels = _labels(db)
    assert labels == {
        signs["audit"].id: (1, "import:labels.csv", "import", "random"),  # the audit-slice task keeps its reason
        signs["by_id"].id: (2, "ann", "import", "imported"),
        signs["by_ref"].id: (0, "import:labels.csv", "import", "imported"),
        signs["paired"].id: (2, "import:labels.csv", "import", "imported"),  # a shadow pair: production's side
        signs["canary"].id: (0, "import:labels.csv", "import", "imported"),  # a candidate's canary prediction
    }
    with db.session() as session:
        # The canary's accuracy test reads only the uniformly random slice: the imported audit label, not the rest.
        refs = [r.input_ref for r in signs.values() if r.input_ref]
        assert known_labels(session, refs) == {signs["audit"].input_ref: 1}
        assert len(labeled_samples(session, "signs")) == 5  # retraining sees every label
        status = queue_status(session, "signs", settings.labeling_daily_budget)
        assert status.labels == 5 and status.by_reason == {"random": 1, "imported": 4}
        assert status.queued_today == 1  # nobody was asked to label the imported ones: the budget is untouched
    # Again, as JSON Lines, with one label changed: the rest are unchanged, nothing is queued twice.
    jsonl = tmp_path / "again.jsonl"
    jsonl.write_text(f'{{"prediction_id": "{signs["by_id"].id}", "label": 2, "annotator": "ann"}}\n\n'
                     f'{{"request_id": "req-7", "label": "stop"}}\n')
    again = runner.invoke(root_cli.app, ["labeling", "import", str(jsonl), "--model", "signs", "--json",
                                         "--annotator", "ann"], env=_env(db_url, settings))
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {"model": "signs", "rows": 2, "labeled": 0, "updated": 1, "unchanged": 1,
                                             "new_tasks": 0, "audit": 0, "unlabeled_rows": 0}
    assert _labels(db)[signs["paired"].id] == (0, "ann", "import", "imported")


def test_cli_import_refuses_the_whole_file_listing_every_bad_row(db, db_url, settings, signs, tmp_path: Path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(
        "prediction_id,request_id,input_ref,label\n"
        f"{signs['by_id'].id},,,yield\n"  # good, but must not be stored
        f"{uuid.uuid4()},,,yield\n"  # line 3: unknown id
        f"{signs['canary'].id},,,cat\n"  # line 4: not a class
        f"{signs['by_id'].id},,,stop\n"  # line 5: the same prediction as line 2
        f",,,stop\n"  # line 6: no key
        f"not-a-uuid,,,3\n"  # line 7: bad id, and 3 is out of range
        f"{signs['no_input'].id},,,stop\n"  # line 8: no stored input, but good: its label judges the model
        f",req-404,,stop\n"  # line 9: unknown request id
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | _env(db_url, settings)
    done = subprocess.run([sys.executable, "-c", "from shiftwatch.cli import main; main()", "labeling", "import",
                           str(csv_file), "--model", "signs"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "6 of 8 rows refused, nothing imported" in done.stderr
    for expected in ("line 3, prediction_id: no prediction of signs has prediction_id",
                     "line 4, label: 'cat' is not one of signs's classes (stop, yield, speed)",
                     "line 5, prediction_id: duplicate: labels the same prediction as line 2",
                     "line 6, prediction_id/request_id/input_ref: give exactly one",
                     "line 7, prediction_id: 'not-a-uuid' is not a UUID", "line 7, label: '3' is not one of",
                     "line 9, request_id: no prediction of signs has request_id 'req-404'"):
        assert expected in done.stderr
    assert "line 2" not in done.stderr.replace("as line 2", "") and "line 8" not in done.stderr
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Label)) == 0
        assert session.scalar(select(func.count()).select_from(LabelTask)) == 1  # only the audit task from before
    unknown_column = tmp_path / "typo.csv"
    unknown_column.write_text(f"prediction_id,lable\n{signs['by_id'].id},stop\n")
    typo = CliRunner().invoke(root_cli.app, ["labeling", "import", str(unknown_column), "--model", "signs"],
                              env=_env(db_url, settings))
    assert typo.exit_code != 0 and "line 1, lable: is not one of prediction_id" in str(typo.exception)


def test_post_labels_stores_all_rows_or_answers_422_naming_each_bad_one(api, db, signs):
    bad = api.post("/v1/labels", json={"model": "signs", "labels": [
        {"prediction_id": str(signs["canary"].id), "label": "speed"},
        {"input_ref": "inputs/nowhere.png", "label": "stop"},
        {"prediction_id": str(signs["shadow"].id), "label": 7},
    ]})
    assert bad.status_code == 422, bad.text
    assert bad.json()["details"] == [
        {"where": "labels[1]", "field": "input_ref", "why": "no prediction of signs has input_ref 'inputs/nowhere.png'"},
        {"where": "labels[2]", "field": "label",
         "why": "7 is not one of signs's classes (stop, yield, speed) nor an index 0..2"},
    ]
    assert _labels(db) == {}
    good = api.post("/v1/labels", json={"model": "signs", "labels": [
        {"prediction_id": str(signs["canary"].id), "label": "speed"},
        {"input_ref": signs["audit"].input_ref, "label": 0, "annotator": "qa-team"},
        {"prediction_id": str(signs["shadow"].id), "label": "yield"},
    ]})
    assert good.status_code == 200, good.text
    assert good.json() == {"model": "signs", "rows": 3, "labeled": 3, "updated": 0, "unchanged": 0, "new_tasks": 2,
                           "audit": 1}
    assert _labels(db) == {
        signs["canary"].id: (2, "local-admin", "import", "imported"),
        signs["audit"].id: (0, "qa-team", "import", "random"),
        signs["shadow"].id: (1, "local-admin", "import", "imported"),
    }
    unknown_model = api.post("/v1/labels", json={"model": "nope", "labels": [{"request_id": "r", "label": 0}]})
    assert unknown_model.status_code == 404
    # A prediction logged without its input (an SDK-only service) is labeled too: the label judges, not trains.
    no_input = api.post("/v1/labels", json={"model": "signs", "labels": [
        {"prediction_id": str(signs["no_input"].id), "label": "stop"}]})
    assert no_input.status_code == 200 and no_input.json()["labeled"] == 1, no_input.text
    assert _labels(db)[signs["no_input"].id] == (0, "local-admin", "import", "imported")


def test_export_then_import_labels_the_open_audit_tasks_a_person_filled_in(db, db_url, settings, signs, tmp_path: Path):
    with db.session() as session:  # the audit slice of every route (the scheduled job's selection)
        select_for_labeling(session, "signs", Budget.of(settings, "signs"), start=datetime.now(UTC) - timedelta(hours=1),
                            seed=0)
    out = tmp_path / "queue.csv"
    runner = CliRunner()
    exported = runner.invoke(root_cli.app, ["labeling", "export", "--model", "signs", "--audit", "--out", str(out)],
                             env=_env(db_url, settings))
    assert exported.exit_code == 0, exported.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    # ("" is the fixture's own audit task, queued by hand without a route)
    assert {r["route"] for r in rows} == {"production", "shadow", "canary", ""} and {r["reason"] for r in rows} == {"audit"}
    assert all(r["label"] == "" and "/v1/labeling/inputs/" in r["image_url"] for r in rows)
    for row in rows[::2]:  # a person labels every other image, and sends the file back as it is
        row["label"] = "yield"
    with out.open("w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    done = runner.invoke(root_cli.app, ["labeling", "import", str(out), "--model", "signs", "--json"],
                         env=_env(db_url, settings))
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    labeled = len(rows[::2])
    assert (result["labeled"], result["audit"], result["new_tasks"], result["unlabeled_rows"]) == (
        labeled, labeled, 0, len(rows) - labeled)
    with db.session() as session:  # every one of them counts for unbiased accuracy
        assert len(known_labels(session, [r.input_ref for r in signs.values() if r.input_ref])) == labeled


@pytest.mark.parametrize("backend", ["sqlite"])  # no SQL of its own: sync's rules over rows the other tests store
def test_an_imported_label_outlives_label_studio_forgetting_the_task(api, db, signs):
    from shiftwatch.labeling.sync import apply_task

    with db.session() as session:  # the audit task was pushed to Label Studio as task 41
        task = session.scalar(select(LabelTask).where(LabelTask.prediction_id == signs["audit"].id))
        task.state, task.studio_task_id, task.studio_project_id = "sent", 41, 1
    assert api.post("/v1/labels", json={"model": "signs", "labels": [
        {"prediction_id": str(signs["audit"].id), "label": "speed"}]}).status_code == 200
    with db.session() as session:  # a pull finds the task unannotated in Label Studio: it is still labeled here
        task = session.scalar(select(LabelTask).where(LabelTask.prediction_id == signs["audit"].id))
        assert apply_task(session, task, {"id": 41, "project": 1, "annotations": []}, "pull").unchanged == 1
    assert _labels(db)[signs["audit"].id] == (2, "local-admin", "import", "random")


def test_the_sdk_sends_labels_by_request_id_and_gets_every_bad_row_back(live_server, db, signs):
    from shiftwatch_client.client import ApiError, Client

    with Client(live_server.url) as client:
        with pytest.raises(ApiError) as refused:
            client.send_labels("signs", [{"request_id": "req-7", "label": "stop"}, {"request_id": "nope", "label": "stop"},
                                         {"prediction_id": signs["canary"].id, "label": "cat"}])
        assert refused.value.status == 422 and "2 of 3 rows refused" in refused.value.detail
        assert "labels[1], request_id" in refused.value.detail and "labels[2], label" in refused.value.detail
        assert _labels(db) == {}
        done = client.send_labels("signs", [{"request_id": "req-7", "label": "stop"},
                                            {"prediction_id": signs["canary"].id, "label": "speed"}])
    assert (done["labeled"], done["new_tasks"]) == (2, 2)
    assert _labels(db)[signs["canary"].id] == (2, "local-admin", "import", "imported")
