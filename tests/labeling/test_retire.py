"""Retiring labels when a label definition changes (``labeling retire``, ``POST /v1/labels/retire``, the SDK): the old
definition's labels stay for audit and leave retraining, the labeled-accuracy detector and the canary's accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from shiftwatch import cli as root_cli
from shiftwatch.collector import registry
from shiftwatch.detectors.correctness import labels_mark
from shiftwatch.labeling.label_import import LabelRow, import_labels
from shiftwatch.labeling.policy import enqueue
from shiftwatch.labeling.queries import labeled_outcomes, labeled_samples
from shiftwatch.labeling.queue import queue_status
from shiftwatch.labeling.tables import Label
from shiftwatch.rollout.handoff import known_labels
from shiftwatch_client.records import PredictionRecord
from tests.support.collector import store_predictions
from tests.support.labeling import fake_ref

CLASSES = ["bolt", "nut", "washer"]


@pytest.fixture
def parts(db, settings) -> list[PredictionRecord]:
    """Model ``parts`` v1 in production: 9 predictions (3 per class), all in the audit slice, all labeled as predicted."""
    with db.session() as session:
        registry.register_model(session, "parts", CLASSES)
        version_id = registry.register_version(session, "parts", "v1", embedding_dim=4, state="production").id
    ts = datetime.now(UTC) - timedelta(minutes=10)
    rng = np.random.default_rng(0)
    made = []
    for i in range(9):
        probs = np.full(3, 0.1, dtype=np.float32)
        probs[i % 3] = 0.8
        made.append(PredictionRecord(model="parts", version="v1", route="production", input_ref=fake_ref(f"part-{i}"),
                                     predicted_class=i % 3, confidence=0.8, probabilities=probs,
                                     embedding=rng.normal(size=4).astype(np.float32), ts=ts + timedelta(seconds=i)))  # fmt: skip
    store_predictions(db, settings, made)
    with db.session() as session:
        assert enqueue(session, version_id, [r.id for r in made], "random").queued == 9
        rows = [LabelRow.of(f"row {i}", {"prediction_id": str(r.id), "label": r.predicted_class}) for i, r in enumerate(made)]
        assert import_labels(session, "parts", rows, annotator="old-guide").labeled == 9
    return made


def _state(db, settings) -> tuple[int, int, int, int, str]:
    """(training labels, uniform outcomes, canary-usable inputs, retired in the status, the detector's labels mark)."""
    with db.session() as session:
        version_id = registry.get_version(session, "parts", "v1").id
        outcomes = labeled_outcomes(session, version_id)
        known = known_labels(session, [fake_ref(f"part-{i}") for i in range(9)])
        status = queue_status(session, "parts", settings.labeling_daily_budget)
        assert status.labels == 9  # kept for audit
        return (len(labeled_samples(session, "parts")), len(outcomes), len(known), status.retired_labels,
                labels_mark(session, version_id))  # fmt: skip


def _cli(db_url: str, settings, *args: str):
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    return CliRunner().invoke(root_cli.app, ["labeling", "retire", "--model", "parts", *args], env=env)


def test_cli_retires_one_class_labels_out_of_training_and_accuracy_and_a_new_label_brings_one_back(
    db, db_url, settings, parts
) -> None:
    before = _state(db, settings)
    assert before[:4] == (9, 9, 9, 0)
    cut = datetime.now(UTC).isoformat()
    done = _cli(db_url, settings, "--before", cut, "--class", "bolt", "--reason", "bolts with a hex head are nuts now",
                "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"model": "parts", "before": cut, "class": "bolt", "retired": 3,
                                       "retired_total": 3, "active": 6}  # fmt: skip
    after = _state(db, settings)
    assert after[:4] == (6, 6, 6, 3)
    assert after[4] != before[4]  # the scheduled labeled_accuracy tests again: its labels changed
    with db.session() as session:
        retired = session.scalars(select(Label).where(Label.retired_at.is_not(None))).all()
        assert {r.label for r in retired} == {0} and {r.retired_reason for r in retired} == {"bolts with a hex head are nuts now"}
    # Again: nothing more to retire.
    again = _cli(db_url, settings, "--before", cut, "--class", "0", "--json")
    assert json.loads(again.stdout)["retired"] == 0
    # Relabeled under the new definition (a bolt is a nut now): that sample counts again, with its new label.
    with db.session() as session:
        row = LabelRow.of("row 0", {"prediction_id": str(parts[0].id), "label": "nut"})
        assert import_labels(session, "parts", [row], annotator="new-guide").updated == 1
        samples = {s.prediction_id: s.label for s in labeled_samples(session, "parts")}
    assert samples[parts[0].id] == 1 and parts[3].id not in samples
    assert _state(db, settings)[:4] == (7, 7, 7, 2)


def test_cli_refuses_bad_input_with_exit_2_and_retires_nothing(db, db_url, settings, parts) -> None:
    now = datetime.now(UTC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")}
    env |= {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    for args, says in [
        (("--model", "parts", "--before", "yesterday"), "--before: 'yesterday' is not an ISO date"),
        (("--model", "parts", "--before", (now + timedelta(hours=1)).isoformat()), "is in the future"),
        (("--model", "parts", "--before", now.isoformat(), "--class", "screw"), "class: 'screw' is not a class of parts"),
        (("--model", "parts", "--before", now.isoformat(), "--class", "7"), "class: '7' is not a class of parts"),
        (("--model", "nope", "--before", now.isoformat()), "model 'nope' is not registered"),
    ]:
        done = subprocess.run([sys.executable, "-c", "from shiftwatch.cli import main; main()", "labeling", "retire", *args],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr, (args, done.stderr)
    assert _state(db, settings)[:4] == (9, 9, 9, 0)


def test_http_retire_answers_422_naming_the_field_and_retires_everything_before_the_cut(api, db, settings, parts) -> None:
    now = datetime.now(UTC)
    for body, field in [
        ({"model": "parts", "before": now.replace(tzinfo=None).isoformat()}, "time zone"),
        ({"model": "parts", "before": (now + timedelta(days=1)).isoformat()}, "in the future"),
        ({"model": "parts", "before": now.isoformat(), "class": "screw"}, "class"),
        ({"model": "parts", "before": now.isoformat(), "colour": "red"}, "colour"),
        ({"model": "parts", "before": "soon"}, "before"),
        ({"model": "parts", "before": "0001-01-01T00:00:00+05:00"}, "outside the years"),
    ]:
        answer = api.post("/v1/labels/retire", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.text, (body, answer.text)
    assert api.post("/v1/labels/retire", json={"model": "nope", "before": now.isoformat()}).status_code == 404
    assert _state(db, settings)[:4] == (9, 9, 9, 0)
    # A cut before every label retires none; one after them retires all.
    early = api.post("/v1/labels/retire", json={"model": "parts", "before": (now - timedelta(days=1)).isoformat()})
    assert early.status_code == 200 and early.json()["retired"] == 0
    done = api.post("/v1/labels/retire", json={"model": "parts", "before": now.isoformat()})
    assert done.status_code == 200, done.text
    assert (done.json()["retired"], done.json()["active"], done.json()["class"]) == (9, 0, None)
    assert _state(db, settings)[:4] == (0, 0, 0, 9)


def test_the_sdk_retires_by_class_index(live_server, db, settings, parts) -> None:
    from shiftwatch_client.client import ApiError, Client

    with Client(live_server.url) as client:
        with pytest.raises(ValueError, match="before"):
            client.retire_labels("parts", datetime.now(UTC).replace(tzinfo=None))
        with pytest.raises(ApiError) as refused:
            client.retire_labels("parts", datetime.now(UTC), label_class=3)
        assert refused.value.status == 422 and "class" in refused.value.detail
        done = client.retire_labels("parts", datetime.now(UTC), label_class=2, reason="washers split in two")
    assert (done["retired"], done["class"]) == (3, "washer")
    assert _state(db, settings)[:4] == (6, 6, 6, 3)
    assert uuid.UUID(str(parts[2].id))  # the retired ones are still there, by id
