"""Issue 31: pure concept drift -- the inputs and confidences unchanged, the right answer changed -- found on a schedule.

A user logs predictions over HTTP with the SDK, pins a stretch as the reference, and watches the
version with an embedding detector, an output detector and ``labeled_accuracy``. The labeling
queue's uniform slice gets labels over HTTP (``POST /v1/labels``, as a team labeling outside Label
Studio sends them); then the label of one class is remapped for the current traffic. Only labels can see that: the scheduled labeled detector
alerts, "concept drift", with the realized accuracy and its interval; the others stay quiet.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from shiftwatch.collector import registry
from shiftwatch.db import Database, utcnow
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.detectors.tables import Alert, DriftRun
from shiftwatch.labeling.policy import enqueue
from shiftwatch.settings import Settings
from shiftwatch_client.client import Client
from tests.support.labeling import fake_ref

DIM = 16
CLASSES = ["bolt", "nut", "washer", "screw"]
ACCURACY = 0.9  # of the model on both windows, by the labels people gave before the class was redefined


@pytest.fixture
def client(live_server, tmp_path):
    with Client(live_server.url, spill_dir=tmp_path / "spill", batch_size=100) as sdk:
        yield sdk


def log_traffic(client: Client, start: datetime, n: int, seed: int, truth: dict[uuid.UUID, int]) -> list[uuid.UUID]:
    """``n`` predictions from four cameras, 5 s apart, drawn alike whatever the seed; ``truth`` gets each one's label."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        predicted = int(rng.integers(len(CLASSES)))
        probs = rng.dirichlet(np.ones(len(CLASSES)))
        probs[[predicted, probs.argmax()]] = probs[[probs.argmax(), predicted]]  # the top class is the predicted one
        right = rng.random() < ACCURACY
        label = predicted if right else int((predicted + 1 + rng.integers(len(CLASSES) - 1)) % len(CLASSES))
        ids.append(client.log("parts", "v1", predicted, float(probs.max()), embedding=rng.normal(0.0, 1.0, DIM),
                              probabilities=probs, stream_id=f"cam-{i % 4}", input_ref=fake_ref(f"{seed}-{i}"),
                              ts=start + timedelta(seconds=5 * i)))  # fmt: skip
        truth[ids[-1]] = label
    assert client.flush(timeout=30)
    return ids


def audit(db: Database, client: Client, ids: list[uuid.UUID], truth: dict[uuid.UUID, int], *, queued: bool = True) -> None:
    """Label ``ids`` over HTTP (``POST /v1/labels``); ``queued``: the audit slice drew them first (uniformly), else
    someone labeled predictions of their own choosing (stored as ``imported``)."""
    if queued:
        with db.session() as session:
            enqueue(session, registry.get_version(session, "parts", "v1").id, ids, "random")
    answer = client.send_labels("parts", [{"prediction_id": pid, "label": truth[pid]} for pid in ids])
    assert answer["audit"] == (len(ids) if queued else 0), answer


def shuffled(ids: list, seed: int) -> list:
    return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


def runs_at(db: Database, tick: datetime) -> dict[str, DriftRun]:
    with db.session() as session:
        rows = session.scalars(select(DriftRun).where(DriftRun.tick == tick))
        found = {run.detector: run for run in rows}
        session.expunge_all()
        return found


def test_pure_concept_drift_pages_once_from_the_labeled_detector_while_input_and_output_detectors_stay_quiet(
    client, db: Database, settings: Settings
) -> None:
    client.register_model("parts", CLASSES)
    client.register_version("parts", "v1", embedding_dim=DIM)
    client.bootstrap_version("parts", "v1", reason="served by the user's own stack")
    truth: dict[uuid.UUID, int] = {}
    reference_start = (utcnow() - timedelta(hours=3)).replace(microsecond=0)
    reference_ids = log_traffic(client, reference_start, 400, seed=1, truth=truth)
    client.set_reference("parts", "v1", start=reference_start, end=reference_start + timedelta(seconds=2001))
    audit(db, client, shuffled(reference_ids, seed=2)[:200], truth)  # the reference's accuracy: uniform labels of its time range
    for detector, params in (("mmd", {"n_permutations": 200}), ("bbsd", {})):
        client.add_detector("parts", "v1", detector, window_minutes=60, schedule_seconds=60, confirm_runs=1, params=params)
    labeled = client.add_detector("parts", "v1", "labeled_accuracy", window_minutes=60, schedule_seconds=60,
                                  confirm_runs=1, min_effect=10.0)  # a 10-point fall is worth a page
    assert (labeled["input"], labeled["min_effect"]) == ("correctness", 10.0)

    now = utcnow().replace(microsecond=0)
    current_truth: dict[uuid.UUID, int] = {}
    current_ids = log_traffic(client, now - timedelta(minutes=40), 400, seed=3, truth=current_truth)
    # The concept changed: what was a "bolt" is now labeled "nut", for the whole of the current traffic.
    truth.update({pid: 1 if label == 0 else label for pid, label in current_truth.items()})
    current_ids = shuffled(current_ids, seed=4)
    audit(db, client, current_ids[:15], truth)
    audit(db, client, current_ids[15:120], truth, queued=False)  # not drawn uniformly: never counted

    first = now + timedelta(seconds=1)
    report = run_due_detectors(db, settings, first)
    assert report.failed_versions == () and report.runs == 3 and report.opened == ()
    tick = runs_at(db, report.tick)
    for detector in ("mmd", "bbsd"):  # inputs and confidences drawn alike: nothing to see
        assert (tick[detector].status, tick[detector].decision) == ("ok", False), tick[detector].note
    labeled = tick["labeled_accuracy"]
    assert labeled.status == "skipped" and labeled.decision is False
    counted, needed = map(int, re.fullmatch(r"too few labels: (\d+) of (\d+) needed", labeled.note).groups())
    assert counted == 15 < needed <= 280  # the 105 labels nobody drew uniformly did not count; 280 will

    audit(db, client, current_ids[120:], truth)  # the rest of the audit slice is labeled
    second = first + timedelta(minutes=2)
    report = run_due_detectors(db, settings, second)
    assert report.failed_versions == () and report.runs == 1 and len(report.opened) == 1  # only the labels were new
    labeled = runs_at(db, report.tick)["labeled_accuracy"]
    assert labeled.status == "ok" and labeled.decision is True and labeled.n_current >= needed
    with db.session() as session:
        alert = session.scalars(select(Alert)).one()
        assert alert.detector == "labeled_accuracy" and alert.harm_source == "labeled"
        assert alert.title.startswith("labeled_accuracy: concept drift (")
        assert alert.evidence["combined"]["kind"] == "concept drift"
        assert "mmd" in alert.evidence["combined"]["why"] and "bbsd" in alert.evidence["combined"]["why"]
        harm = alert.evidence["harm"]
    assert harm["source"] == "labeled" and "uniform labels, exact interval" in harm["method"]
    low, high = harm["accuracy_interval"]
    assert low < harm["accuracy"] < high and high < harm["reference_accuracy"]  # a real drop, seen through its interval
    assert harm["accuracy"] < ACCURACY - 0.1
    assert harm["interval"][0] > 0 and "95 % interval" in alert.title
