"""Against a real Label Studio 1.23.2 started on 127.0.0.1 for this test session (``label_studio`` in conftest.py)."""

from __future__ import annotations

import ipaddress
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.labeling.input_links import InputLinks
from shiftwatch.labeling.oracle import label_with_oracle
from shiftwatch.labeling.policy import QueueItem, enqueue
from shiftwatch.labeling.studio import (
    PREDICTION_MODEL_VERSION,
    PRIORITY_TAB,
    SAMPLING,
    Studio,
    choice_result,
    project_title,
)
from shiftwatch.labeling.sync import pull, push
from shiftwatch.labeling.tables import Label, LabelTask
from tests.support.labeling import eventually, free_port_closed, log, low_contrast_png, probs_with_margin
from tests.support.studio_server import QUIET_ENV

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

CLASSES = ["zero", "one", "two", "three"]


@pytest.fixture
def queued(db, wired):
    """A fresh model (one Label Studio project per test) with four queued predictions of different priority."""
    name = f"cams-{uuid.uuid4().hex[:8]}"
    with db.session() as session:
        registry.register_model(session, name, CLASSES)
        version_id = registry.register_version(session, name, "v1", embedding_dim=8, state="production").id
    store = InputStore(wired.data_dir)
    refs = [store.put(b"\x89PNG\r\n\x1a\n" + bytes([i]) * 32, "png") for i in range(4)]
    probabilities = np.stack([probs_with_margin(c, 0.3, num_classes=4) for c in (0, 1, 2, 3)])
    ids = log(db, wired, probabilities, np.eye(4, 8), input_refs=refs, model=name)
    with db.session() as session:
        enqueue(session, version_id, [QueueItem(i, score=s) for i, s in zip(ids, (0.2, 0.9, 0.5, 0.7), strict=True)], "flagged")
    return name, ids


def _rows(db) -> dict[uuid.UUID, tuple[LabelTask, Label | None]]:
    with db.session() as session:
        labels = {label.task_id: label for label in session.scalars(select(Label))}
        return {t.prediction_id: (t, labels.get(t.id)) for t in session.scalars(select(LabelTask))}


def test_push_creates_the_project_and_preannotated_tasks_in_priority_order(db, wired, queued, label_studio):
    name, ids = queued
    down = wired.model_copy(update={"label_studio_url": f"http://127.0.0.1:{free_port_closed()}"})
    assert push(db, down, name).pending == 4  # Label Studio "down": all stay pending, attempt recorded
    assert {t.attempts for t, _ in _rows(db).values()} == {1}

    result = push(db, wired, name, force=True)
    assert (result.sent, result.pending, result.error) == (4, 0, None)
    sdk = Studio(label_studio.url, label_studio.token).client
    project = sdk.projects.get(result.project_id)
    assert project.title == project_title(name)
    assert all(f'<Choice value="{c}" hotkey="{k}"/>' in project.label_config for c, k in zip(CLASSES, "zotr", strict=True))
    assert (project.sampling, project.model_version) == (SAMPLING, PREDICTION_MODEL_VERSION)
    rows = _rows(db)
    assert {(t.state, t.attempts) for t, _ in rows.values()} == {("sent", 2)}
    tab = next(v for v in sdk.views.list(project=result.project_id) if v.data["title"] == PRIORITY_TAB)
    tasks = [t.model_dump(mode="json") for t in sdk.tasks.list(project=result.project_id, view=tab.id)]
    assert [uuid.UUID(t["data"]["prediction_id"]) for t in tasks] == [ids[1], ids[3], ids[2], ids[0]]
    assert tab.data["columnsDisplayType"] == {"tasks:data.priority": "Number"}  # sorts and range-filters as a number
    scores = [t["predictions"][0]["score"] for t in tasks]
    assert scores == sorted(scores)  # uncertainty sampling serves the lowest first: the highest priority
    for task in tasks:
        row = rows[uuid.UUID(task["data"]["prediction_id"])][0]
        assert task["predictions"][0]["result"] == choice_result(CLASSES[row.predicted_class])
        assert task["data"]["priority"] == pytest.approx(row.priority) and task["data"]["reason"] == "flagged"
        assert task["data"]["headline"].startswith(f"Priority {row.priority:.2f}")
        image = httpx.get(task["data"]["image"], timeout=10, headers={"Origin": label_studio.url})  # as its page does
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert image.headers["access-control-allow-origin"] == label_studio.url
    assert push(db, wired, name).sent == 0  # nothing is sent twice


def test_annotations_come_back_by_webhook_and_an_update_changes_the_label(db, wired, queued, label_studio):
    name, ids = queued
    push(db, wired, name)
    task_id = _rows(db)[ids[1]][0].studio_task_id
    sdk = Studio(label_studio.url, label_studio.token).client
    annotation = sdk.annotations.create(task_id, result=choice_result("three"))
    assert eventually(lambda: (label := _rows(db)[ids[1]][1]) is not None and label.label == 3)
    assert _rows(db)[ids[1]][1].source == "webhook" and _rows(db)[ids[1]][0].state == "labeled"

    sdk.annotations.update(annotation.id, result=choice_result("two"))
    assert eventually(lambda: _rows(db)[ids[1]][1].label == 2)

    sdk.tasks.delete(str(task_id))
    assert eventually(lambda: _rows(db)[ids[1]][0].state == "skipped")
    assert _rows(db)[ids[1]][1] is None


def test_pull_catches_annotations_the_webhook_missed(db, wired, queued, label_studio):
    name, ids = queued
    result = push(db, wired, name)
    sdk = Studio(label_studio.url, label_studio.token).client
    for hook in sdk.webhooks.list(project=str(result.project_id)):
        sdk.webhooks.delete(hook.id)  # shiftwatch "was down": no webhook arrives
    rows = _rows(db)
    sdk.annotations.create(rows[ids[0]][0].studio_task_id, result=choice_result("one"))
    sdk.annotations.create(rows[ids[2]][0].studio_task_id, result=[], was_cancelled=True)
    assert _rows(db)[ids[0]][1] is None
    counts = pull(db, Studio.from_settings(wired), name)
    assert (counts.labeled, counts.skipped) == (1, 1)
    rows = _rows(db)
    assert rows[ids[0]][1].label == 1 and rows[ids[0]][1].source == "pull"
    assert rows[ids[2]][0].state == "skipped"
    assert pull(db, Studio.from_settings(wired), name).labeled == 0


def test_labels_made_here_close_their_tasks_there_and_pull_keeps_them(db, wired, queued, label_studio):
    name, ids = queued
    push(db, wired, name)
    with db.session() as session:
        assert label_with_oracle(session, name, lambda ref: 0, limit=2) == 2  # ids[1] and ids[3]: the top two
    studio = Studio.from_settings(wired)
    pull(db, studio, name)  # no annotation for them there yet: the labels stay (pull used to put them back to "sent")
    assert {i: (t.state, label.source) for i, (t, label) in _rows(db).items() if label} == {
        ids[1]: ("labeled", "oracle"), ids[3]: ("labeled", "oracle")
    }
    result = push(db, wired, name)
    assert (result.sent, result.closed) == (0, 2)
    sdk = studio.client
    for i in (ids[1], ids[3]):
        task = sdk.tasks.get(_rows(db)[i][0].studio_task_id)
        assert task.is_labeled and len(task.annotations) == 1  # done in Label Studio too: nobody labels it again
    assert eventually(lambda: all(_rows(db)[i][1].studio_annotation_id for i in (ids[1], ids[3])))
    assert {(label.source, label.annotator) for _, label in _rows(db).values() if label} == {("oracle", "oracle")}
    assert pull(db, studio, name).unchanged == 4 and push(db, wired, name).closed == 0  # its echo is ours, once

    oracle_annotation = _rows(db)[ids[1]][1].studio_annotation_id
    sdk.annotations.update(oracle_annotation, result=choice_result("two"))  # a reviewer corrects the oracle
    assert eventually(lambda: _rows(db)[ids[1]][1].label == 2)
    assert _rows(db)[ids[1]][1].source == "webhook"
    sdk.tasks.delete(str(_rows(db)[ids[3]][0].studio_task_id))  # deleting the task does not unlearn our label
    assert eventually(lambda: _rows(db)[ids[3]][0].studio_task_id is None)
    task, label = _rows(db)[ids[3]]
    assert (task.state, label.label, label.source) == ("labeled", 0, "oracle")


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (Linux /proc/net/tcp, IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(str(ipaddress.ip_address(bytes.fromhex(address)[::-1])) if len(address) == 8 else address)
    return found


def test_the_test_server_listens_on_loopback_only_and_does_not_call_out(label_studio):
    assert listening_addresses(label_studio.port) == {"127.0.0.1"}  # not 0.0.0.0: --internal-host
    environ = Path(f"/proc/{label_studio.process.pid}/environ").read_bytes().split(b"\0")
    for name, value in QUIET_ENV.items():
        assert f"{name}={value}".encode() in environ


def test_a_project_an_older_shiftwatch_made_gets_the_current_view_and_its_open_tasks_the_new_fields(
    db, wired, label_studio
):
    name = f"cams-{uuid.uuid4().hex[:8]}"
    with db.session() as session:
        registry.register_model(session, name, CLASSES)
        version_id = registry.register_version(session, name, "v1", embedding_dim=8, state="production").id
    ref = InputStore(wired.data_dir).put(low_contrast_png(), "png")
    ids = log(db, wired, np.stack([probs_with_margin(c, 0.3, num_classes=4) for c in (0, 1)]), np.eye(2, 8),
              input_refs=[ref, ref], model=name)  # fmt: skip
    sdk = Studio(label_studio.url, label_studio.token).client
    choices = "".join(f'<Choice value="{c}"/>' for c in CLASSES)  # the view before: keys 1..4, no stretched copy
    old_view = (f'<View><Image name="image" value="$image" zoom="true"/><Choices name="label" toName="image" '
                f'choice="single-radio" showInLine="true">{choices}</Choices></View>')
    project = sdk.projects.create(title=project_title(name), label_config=old_view)
    with db.session() as session:
        enqueue(session, version_id, [ids[0]], "uncertain")
        row = session.scalars(select(LabelTask)).one()
        link = InputLinks.of(wired).link(ref)
        old_task = {"image": link, "prediction_id": str(ids[0]), "priority": "1.7", "reason": "uncertain"}
        [task_id] = Studio.from_settings(wired).import_tasks(project.id, [{"data": old_task}])
        row.state, row.studio_project_id, row.studio_task_id = "sent", project.id, task_id  # as the older push left it
        enqueue(session, version_id, [ids[1]], "uncertain")
    assert push(db, wired, name).sent == 1
    current = sdk.projects.get(project.id)  # the view, the sampling and its model version: as a new project has them
    assert 'hotkey="z"' in current.label_config and "$stretched" in current.label_config
    assert (current.sampling, current.model_version) == (SAMPLING, PREDICTION_MODEL_VERSION)
    refreshed = sdk.tasks.get(task_id)
    assert refreshed.data["stretched"] == refreshed.data["image"] + "&view=stretched"
    assert "Why it is here" in refreshed.data["why"] and isinstance(refreshed.data["priority"], float)
    assert PREDICTION_MODEL_VERSION in [p.model_version for p in refreshed.predictions]  # sampled by priority too
