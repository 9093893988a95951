"""The alert's accuracy becomes the measured one as random-slice labels arrive (issue 24), through the real queue."""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select

from shiftwatch.db import utcnow
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.detectors.tables import Alert
from shiftwatch.labeling.oracle import label_with_oracle
from shiftwatch.labeling.policy import Budget, select_for_labeling
from shiftwatch.labeling.queries import labeled_outcomes
from tests.support.drift_scenario import REGISTRY, add_config, log, pin_labeled_reference, records


def _right(ref: str) -> bool:
    return zlib.crc32(ref.encode()) % 2 == 0  # about half of the drifted window is right, whatever the confidence


@pytest.mark.parametrize("audit_size", [6, 20], ids=["6-labels-alone", "20-labels-prediction-powered"])
def test_an_open_alert_shows_the_labeled_accuracy_and_its_interval_once_random_slice_labels_arrive(
    db, settings, digits_model, audit_size: int
) -> None:
    t0 = utcnow() - timedelta(hours=2)
    pin_labeled_reference(db, digits_model.id, t0)
    add_config(db, digits_model.id, detector="meanshift")
    start = t0 + timedelta(hours=1)
    batch = records(start, 200, shift=0.6, confidence=0.6, seed=70)
    predicted = {r.input_ref: r.predicted_class for r in batch}
    log(db, settings, batch)
    assert run_due_detectors(db, settings, start + timedelta(minutes=5), registry=REGISTRY).opened
    with db.session() as session:
        alert = session.scalars(select(Alert)).one()
        # Before labels: the label-free default on the labeled reference, its method named (issue 24).
        assert alert.harm_source == "accuracy_estimate" and "estimated accuracy" in alert.title and "CBPE" in alert.title
        budget = replace(Budget.of(settings, "digits", 200), audit=audit_size)
        select_for_labeling(session, "digits", budget, start=start,
                            end=start + timedelta(minutes=5), seed=70)
    with db.session() as session:  # the oracle plays the annotator; the alert is refreshed as its labels land
        label_with_oracle(session, "digits", lambda ref: predicted[ref] if _right(ref) else (predicted[ref] + 1) % 10)
    with db.session() as session:
        alert = session.scalars(select(Alert)).one()
        audit = labeled_outcomes(session, alert.model_version_id).random_slice(start, start + timedelta(minutes=5))
        measured = alert.evidence["harm"]
    n = len(audit)
    assert n == audit_size  # the policy's uniform slice: the audit size per route
    assert alert.harm_source == "labeled" and measured["source"] == "labeled"
    assert f"{n} random-slice labels" in measured["method"] and measured["method"] in alert.title
    assert alert.title.split("; ")[1].startswith("accuracy ") and "95 % interval" in alert.title
    low, high = measured["accuracy_interval"]
    assert 0.0 < low <= measured["accuracy"] <= high < 1.0  # an interval, never a point
    if n < 20:  # the labels alone: their exact interval around their own accuracy
        assert measured["accuracy"] == pytest.approx(audit.hits() / n) and "labels alone" in measured["method"]
    else:
        assert "PPI++" in measured["method"] or "labels alone" in measured["method"]
    drop_low, drop_high = measured["interval"]
    assert drop_low <= measured["points"] <= drop_high and alert.estimated_harm == pytest.approx(measured["points"])
    reference = measured["reference_accuracy"]
    assert drop_low <= 100 * (reference - np.mean([_right(r) for r in predicted])) <= drop_high  # the true drop
    assert alert.severity == "high"  # about 50 % against a calibrated reference near 90 %
