"""Issue 31: what a labeled detector's alert calls its episode, and how it joins the version's one page.

Concept drift only when an input or output detector watched the version and stayed quiet; with
none it is an accuracy drop whose cause nobody saw; when the inputs move too it is drift.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from shiftwatch.db import Database, utcnow
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.detectors.tables import Alert, DriftRun
from shiftwatch.labeling.oracle import label_with_oracle
from shiftwatch.labeling.policy import enqueue
from shiftwatch.settings import Settings
from tests.support.drift_scenario import REGISTRY, add_config, log, pin_labeled_reference, records


def test_a_labeled_alert_with_no_input_detector_is_an_accuracy_drop_and_becomes_drift_when_the_inputs_move(
    db: Database, settings: Settings, digits_model
) -> None:
    now = utcnow().replace(microsecond=0)
    pin_labeled_reference(db, digits_model.id, now - timedelta(hours=3))  # uploaded, with labels: ~92 % right
    labeled = add_config(db, digits_model.id, detector="labeled_accuracy", window_last_n=None, window_minutes=60,
                         params={"min_effect_size": 10.0})  # fmt: skip
    batch = records(now - timedelta(minutes=30), 300, seed=7)
    log(db, settings, batch)
    predicted = {r.input_ref: r.predicted_class for r in batch}
    with db.session() as session:
        enqueue(session, digits_model.id, [r.id for r in batch[::2]], "random")
    with db.session() as session:  # half of the audit slice is wrong now
        label_with_oracle(session, "digits", lambda ref: predicted[ref] if int(ref.split("-")[1][:-4]) % 4 else (predicted[ref] + 1) % 10)
    report = run_due_detectors(db, settings, now, registry=REGISTRY)
    assert len(report.opened) == 1
    with db.session() as session:
        alert = session.scalars(select(Alert)).one()
        run = session.scalars(select(DriftRun).where(DriftRun.config_id == labeled)).one()
        assert run.evidence["labels"]["reference_source"] == "the reference's pinned labels"
        assert alert.title.startswith("labeled_accuracy: accuracy drop (")
        assert "no input or output detector" in alert.evidence["combined"]["why"]
        assert alert.harm_source == "labeled" and alert.evidence["harm"]["reference_accuracy"] > 0.85

    add_config(db, digits_model.id, detector="meanshift")  # the inputs move as well
    log(db, settings, records(now - timedelta(minutes=10), 300, shift=1.0, seed=8))
    report = run_due_detectors(db, settings, now + timedelta(minutes=2), registry=REGISTRY)
    assert report.opened == () and report.updated == (alert.id,)  # the same page
    with db.session() as session:
        alert = session.scalars(select(Alert)).one()
        assert alert.title.startswith("labeled_accuracy + meanshift: drift (")
        assert alert.evidence["combined"]["kind"] == "drift"
