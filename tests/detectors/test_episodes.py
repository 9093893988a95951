"""One alert per drift episode per model version (issue 24): a second detector firing updates it, not a second page."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from shiftwatch.db import utcnow
from shiftwatch.detectors import alerts
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.detectors.tables import Alert, WebhookDelivery
from tests.support.drift_scenario import REGISTRY, add_config, log, pin_labeled_reference, records


def test_detectors_firing_on_one_versions_drift_share_one_alert_that_pages_once(api, db, settings, digits_model) -> None:
    settings = settings.model_copy(update={"alert_webhooks": ["http://127.0.0.1:9/hook"]})  # outbox rows only
    t0 = utcnow() - timedelta(hours=3)
    pin_labeled_reference(db, digits_model.id, t0)
    meanshift = add_config(db, digits_model.id, detector="meanshift")
    # confirm_runs=2 would hold it back alone; meanshift's episode is open, so its flagged runs join that alert at once.
    accuracy = add_config(db, digits_model.id, detector="accuracy_drop", params={"method": "cbpe"}, confirm_runs=2)
    for step in range(2):
        start = t0 + timedelta(hours=1, minutes=10 * step)
        log(db, settings, records(start, 200, shift=0.6, confidence=0.6, seed=80 + step))
        report = run_due_detectors(db, settings, start + timedelta(minutes=5), registry=REGISTRY)
        assert report.flagged == 2
        assert len(report.opened) == (1 if step == 0 else 0)
    with db.session() as session:
        (alert,) = session.scalars(select(Alert)).all()  # not one per detector
        grouped = alert.evidence["detectors"]
        events = [d.event for d in session.scalars(select(WebhookDelivery))]
    assert set(grouped) == {str(meanshift), str(accuracy)} and alert.config_id == meanshift
    assert grouped[str(accuracy)]["effect_unit"].startswith("estimated accuracy drop")
    assert grouped[str(meanshift)]["evidence"] and grouped[str(accuracy)]["evidence"]["method"] == "cbpe"
    assert sorted(alert.evidence["combined"]["detectors"]) == ["accuracy_drop", "meanshift"]
    assert alert.run_count == 4 and alert.effect_unit == "reference std (largest dimension)"  # the opener's units
    assert events == ["alert.opened"]  # one page for the episode
    assert alert.harm_source == "accuracy_estimate" and "CBPE" in alert.title
    page = api.get(f"/console/alerts/{alert.id}").text  # the page lists the other detector with its own numbers
    assert "Also fired on this drift episode: accuracy_drop (effect" in page

    with db.session() as session:  # resolved: the next drift on the version is a new episode
        alerts.resolve(session, alerts.Outbox.of(settings), alert.id, "test", utcnow())
    start = t0 + timedelta(hours=1, minutes=30)
    log(db, settings, records(start, 200, shift=0.6, confidence=0.6, seed=90))
    assert len(run_due_detectors(db, settings, start + timedelta(minutes=5), registry=REGISTRY).opened) == 1
    with db.session() as session:
        assert len(session.scalars(select(Alert).where(Alert.open_key.is_not(None))).all()) == 1
