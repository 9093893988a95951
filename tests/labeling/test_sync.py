"""Queue state through Label Studio outages, and labels back: contract tests against recorded Label Studio traffic.

The recordings (tests/data/labelstudio_*.json) come from a real Label Studio 1.23.2; the live
server tests are in test_studio.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.db import utcnow
from shiftwatch.labeling.input_links import InputLinks
from shiftwatch.labeling.oracle import label_with_oracle
from shiftwatch.labeling.policy import Budget, QueueItem, enqueue
from shiftwatch.labeling.queries import labeled_outcomes, labeled_samples
from shiftwatch.labeling.queue import queue_status
from shiftwatch.labeling.studio import WEBHOOK_SECRET_HEADER, Studio
from shiftwatch.labeling.sync import pull, push
from shiftwatch.labeling.tables import Label, LabelTask
from tests.support.labeling import DATA, ReplayServer, free_port_closed, log, probs_with_margin

API = json.loads((DATA / "labelstudio_api.json").read_text())["exchanges"]
HOOKS = json.loads((DATA / "labelstudio_webhooks.json").read_text())
RECORDED_IDS = [uuid.UUID(int=i + 1) for i in range(3)]  # the prediction ids used in the recording


@pytest.fixture
def settings(settings):
    """The recorded webhooks carry the secret derived from this key."""
    return settings.model_copy(update={"secret_key": HOOKS["secret_key"], "label_studio_token": "recorded-token"})


@pytest.fixture
def recorded_queue(db, settings):
    """The model, predictions and queue of the recorded session: three pending tasks."""
    with db.session() as session:
        registry.register_model(session, "recorded", [str(i) for i in range(10)])
        version_id = registry.register_version(session, "recorded", "v1", embedding_dim=4, state="production").id
    probabilities = np.stack([probs_with_margin(c, 0.1 * (c + 1)) for c in (3, 5, 7)])
    log(db, settings, probabilities, np.random.default_rng(0).normal(size=(3, 4)), ids=RECORDED_IDS, model="recorded")
    with db.session() as session:
        enqueue(session, version_id, [QueueItem(i, score=0.5) for i in RECORDED_IDS], "uncertain")
    return version_id


def _rows(db) -> dict[uuid.UUID, tuple[LabelTask, Label | None]]:
    with db.session() as session:
        labels = {label.task_id: label for label in session.scalars(select(Label))}
        return {t.prediction_id: (t, labels.get(t.id)) for t in session.scalars(select(LabelTask))}


def test_push_while_label_studio_is_down_keeps_tasks_pending_then_a_later_push_sends_them(db, settings, recorded_queue):
    down = settings.model_copy(update={"label_studio_url": f"http://127.0.0.1:{free_port_closed()}"})
    first = push(db, down, "recorded")
    assert (first.sent, first.failed, first.pending) == (0, 3, 3) and "ConnectError" in first.error
    rows = _rows(db)
    assert {(t.state, t.attempts) for t, _ in rows.values()} == {("pending", 1)}
    assert all("ConnectError" in t.last_error and t.next_attempt_at > utcnow() for t, _ in rows.values())
    # inside the backoff nothing is tried again; the status says why the queue waits
    assert push(db, down, "recorded").failed == 0
    with db.session() as session:
        status = queue_status(session, "recorded", Budget.of(settings, "recorded").daily)
    assert (status.by_state["pending"], status.retrying) == (3, 3) and "ConnectError" in status.last_error

    with ReplayServer(API[:6]) as studio:
        up = settings.model_copy(update={"label_studio_url": studio.url})
        later = push(db, up, "recorded", now=utcnow() + timedelta(minutes=2))
    assert (later.sent, later.pending, later.project_id, later.error) == (3, 0, 2, None)
    rows = _rows(db)
    assert sorted((t.state, t.attempts, t.studio_task_id) for t, _ in rows.values()) == [
        ("sent", 2, 2), ("sent", 2, 3), ("sent", 2, 4)
    ]
    imported = next(body for method, path, body in studio.calls if path.endswith("/import"))
    task = imported[0]
    assert task["data"]["prediction_id"] in {str(i) for i in RECORDED_IDS}
    assert "/v1/labeling/inputs/" in task["data"]["image"] and "signature=" in task["data"]["image"]
    predicted = rows[uuid.UUID(task["data"]["prediction_id"])][0].predicted_class
    assert task["predictions"][0]["result"][0]["value"]["choices"] == [str(predicted)]
    hook = next(body for method, path, body in studio.calls if method == "POST" and path == "/api/webhooks/")
    assert hook["url"].endswith("/v1/labeling/webhook") and WEBHOOK_SECRET_HEADER in hook["headers"]


def test_pull_stores_answered_annotations_and_skips_cancelled_ones(db, settings, recorded_queue):
    with ReplayServer(API[6:]) as studio:
        live = settings.model_copy(update={"label_studio_url": studio.url})
        counts = pull(db, Studio.from_settings(live), "recorded")
        again = pull(db, Studio.from_settings(live), "recorded")  # the recording's second pull: task 4 was deleted meanwhile
    assert (counts.labeled, counts.skipped) == (2, 1)
    rows = _rows(db)
    assert (rows[RECORDED_IDS[0]][1].label, rows[RECORDED_IDS[1]][1].label) == (3, 6)  # 6: the updated answer
    assert rows[RECORDED_IDS[0]][1].source == "pull" and rows[RECORDED_IDS[0]][1].annotator == "label-studio:1"
    assert rows[RECORDED_IDS[2]][0].state == "skipped" and rows[RECORDED_IDS[2]][1] is None
    assert (again.labeled, again.unchanged) == (0, 2)


def _post(api, event: dict, secret: str | None = None):
    headers = dict(event["headers"]) if secret is None else {WEBHOOK_SECRET_HEADER: secret}
    return api.post("/v1/labeling/webhook", json=event["body"], headers=headers)


def test_webhook_events_create_update_skip_and_delete_labels(db, api, recorded_queue):
    created, created2, updated, cancelled, task_deleted, annotation_deleted = HOOKS["events"]
    assert _post(api, created).json()["labeled"] == 1
    assert _post(api, updated).json()["labeled"] == 1
    assert _post(api, created2).json()["unchanged"] == 1  # an older event arriving late changes nothing
    assert _post(api, cancelled).json()["skipped"] == 1
    rows = _rows(db)
    assert rows[RECORDED_IDS[0]][1].label == 3 and rows[RECORDED_IDS[0]][1].source == "webhook"
    assert rows[RECORDED_IDS[1]][1].label == 6 and rows[RECORDED_IDS[1]][0].state == "labeled"
    assert rows[RECORDED_IDS[2]][0].state == "skipped"
    assert _post(api, task_deleted).json()["deleted"] == 1
    assert _post(api, annotation_deleted).json()["updated"] == 1
    rows = _rows(db)
    assert rows[RECORDED_IDS[0]][1] is None and rows[RECORDED_IDS[0]][0].state == "sent"  # back to waiting for a person


def test_webhook_with_a_wrong_secret_is_refused_and_changes_nothing(db, api, recorded_queue):
    response = _post(api, HOOKS["events"][0], secret="guessed")
    assert response.status_code == 401
    assert all(label is None for _, label in _rows(db).values())
    assert api.post("/v1/labeling/webhook", json=HOOKS["events"][0]["body"]).status_code == 401


def test_signed_image_link_is_the_credential_and_expires(db, settings):
    from fastapi.testclient import TestClient

    from shiftwatch.app import create_app

    settings = settings.model_copy(update={"auth_required": True, "secret_key": "7bpkYZdNLLt9rKC0ZykHLXqWvujtpqxHCRFOXI0R"})
    png = b"\x89PNG\r\n\x1a\n" + b"fake image bytes"
    ref = InputStore(settings.data_dir).put(png, "png")
    link = InputLinks.of(settings).link(ref).removeprefix(settings.public_url)
    with TestClient(create_app(settings, db)) as api:
        assert api.get(link).content == png  # no bearer token: the signature is the credential
        assert api.get(link[:-4] + "0000").status_code == 403
        expired = InputLinks.of(settings).link(ref, now=time.time() - settings.labeling_link_ttl_s - 1)
        assert api.get(expired.removeprefix(settings.public_url)).status_code == 403
        assert api.get(link.split("?")[0]).status_code == 401  # no link, no token


def test_oracle_labels_are_marked_and_feed_the_training_query(db, settings, digits_model):
    rng = np.random.default_rng(10)
    ids = log(db, settings, np.stack([probs_with_margin(i % 10, 0.2) for i in range(6)]), rng.normal(size=(6, 64)))
    with db.session() as session:
        enqueue(session, digits_model.id, ids[:4], "uncertain")
        enqueue(session, digits_model.id, ids[4:], "random")
    truth = {t.input_ref: (t.predicted_class + (t.prediction_id in ids[:2])) % 10 for t, _ in _rows(db).values()}
    before = utcnow()
    with db.session() as session:
        assert label_with_oracle(session, "digits", truth.__getitem__) == 6
        assert label_with_oracle(session, "digits", truth.__getitem__) == 0  # nothing left to label
    with db.session() as session:
        samples = labeled_samples(session, "digits", since=before - timedelta(seconds=1))
        later = labeled_samples(session, "digits", since=utcnow() + timedelta(seconds=1))
        outcomes = labeled_outcomes(session, digits_model.id)
    assert len(samples) == 6 and later == []
    assert {s.annotator for s in samples} == {"oracle"}
    assert all(s.embedding is not None and s.embedding.shape == (64,) and s.input_ref for s in samples)
    assert sum(s.label != s.predicted_class for s in samples) == 2
    assert outcomes.accuracy(unbiased=True) == 1.0 and outcomes.accuracy(unbiased=False) == pytest.approx(4 / 6)


@pytest.mark.slow  # two CLI processes: 3-15 s of imports on a busy machine
def test_cli_push_without_label_studio_exits_2_with_the_reason(db_url, tmp_path, digits_model):
    env = {**os.environ, "SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(tmp_path)}
    env.pop("SHIFTWATCH_LABEL_STUDIO_URL", None)
    cli = [str(Path(sys.executable).parent / "shiftwatch")]
    pushed = subprocess.run([*cli, "labeling", "push"], env=env, capture_output=True, text=True, timeout=60)
    assert pushed.returncode == 2 and "Label Studio is not configured" in pushed.stderr
    status = subprocess.run([*cli, "labeling", "status", "--model", "digits", "--json"], env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert status.returncode == 0 and json.loads(status.stdout)["by_state"]["pending"] == 0
    human = subprocess.run([*cli, "labeling", "status", "--model", "digits"], env=env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert human.returncode == 0 and "by_state" in human.stdout and '"pending": 0' in human.stdout


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "ANNOTATION_CREATED", "task": {"id": 1, "data": "x"}}, "body"),
        ({"action": "ANNOTATION_CREATED", "task": {"id": 1, "data": "x"}, "annotation": {"id": 2}}, "task.data"),
        ({"action": "ANNOTATION_CREATED", "task": {"id": "one"}, "annotation": {"id": 2}}, "task.id"),
        ({"action": "ANNOTATION_CREATED", "task": {"id": 2**40}, "annotation": {"id": 2}}, "task.id"),
        ({"action": "ANNOTATION_CREATED", "task": {"data": {"prediction_id": 5}}, "annotation": {}}, "task.data.prediction_id"),
        ({"action": "ANNOTATION_UPDATED", "task": {"id": 1}, "annotation": {"result": "x"}}, "annotation.result"),
        ({"action": "ANNOTATION_UPDATED", "task": {"id": 1}, "annotation": {"result": [{"value": 3}]}}, "annotation.result[0].value"),
        ({"action": "ANNOTATION_UPDATED", "task": {"id": 1}, "annotation": {"updated_at": "yesterday"}}, "annotation.updated_at"),
        ({"action": "ANNOTATIONS_DELETED", "annotations": ["id"]}, "annotations"),
        ({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": "x"}]}, "annotations[0].id"),
        ({"action": "TASKS_DELETED", "tasks": [{"id": 1}], "project": 3}, "project"),
        ({"action": "TASKS_DELETED", "tasks": {"id": 1}}, "tasks"),
    ],
)
def test_malformed_webhook_is_a_422_naming_the_field_never_a_500(db, api, recorded_queue, body, field):
    """Issue 27.7: a malformed event (e.g. ``task.data`` a string) answered 500; it is refused naming what is wrong."""
    response = api.post("/v1/labeling/webhook", json=body, headers=dict(HOOKS["events"][0]["headers"]))
    assert response.status_code == 422, response.text
    assert field in response.text
    assert all(label is None for _, label in _rows(db).values())
