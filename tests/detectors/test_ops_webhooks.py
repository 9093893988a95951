"""Alert webhooks to a real HTTP receiver on loopback: signed, Slack-shaped or plain JSON, retried after a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from shiftwatch.db import utcnow
from shiftwatch.detectors import alerts
from shiftwatch.detectors.alerts import Outbox
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.detectors.tables import WebhookDelivery
from shiftwatch.detectors.webhooks import MAX_ATTEMPTS, deliver_due
from shiftwatch.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.support.drift_scenario import REGISTRY, add_config, log, pin_reference, records
from tests.support.webhook_receiver import Receiver

SECRET = "receiver-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.mark.slow
def test_alert_webhooks_are_signed_sent_in_background_and_retried_after_a_500(db, settings, digits_model, receiver):
    generic, slack = f"{receiver.url}/generic", f"{receiver.url}/slack"
    settings = settings.model_copy(
        update={
            "alert_webhooks": [generic, f"slack+{slack}"],
            "alert_webhook_secrets": {generic: SECRET},
            "public_url": "https://shiftwatch.example.com/",
        }
    )
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    pin_reference(db, settings, digits_model.id, start)
    add_config(db, digits_model.id)
    log(db, settings, records(start + timedelta(minutes=10), 200, shift=0.6, confidence=0.7, seed=21))
    receiver.statuses = [500]  # the first request (the generic endpoint, enqueued first) fails
    (alert_id,) = run_due_detectors(db, settings, start + timedelta(minutes=15), registry=REGISTRY).opened
    assert receiver.requests == []  # the run itself never calls out

    now = utcnow()
    assert deliver_due(db, Outbox.of(settings).endpoints, now) == {"delivered": 1, "retrying": 1, "failed": 0}
    assert deliver_due(db, Outbox.of(settings).endpoints, now + timedelta(seconds=5)) == {"delivered": 0, "retrying": 0, "failed": 0}
    assert deliver_due(db, Outbox.of(settings).endpoints, now + timedelta(seconds=31)) == {"delivered": 1, "retrying": 0, "failed": 0}

    by_path: dict[str, list[dict]] = {}
    for request in receiver.requests:
        by_path.setdefault(request["path"], []).append(request)
    assert len(by_path["/generic"]) == 2 and len(by_path["/slack"]) == 1
    for request in by_path["/generic"]:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert verify(SECRET, request["body"], headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()])
        assert not verify(
            "wrong", request["body"], headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()]
        )
    payload = json.loads(by_path["/generic"][-1]["body"])
    assert payload["event"] == "alert.opened"
    alert = payload["alert"]
    assert alert["id"] == alert_id and alert["model"] == "digits" and alert["severity"] == "high"
    assert alert["effect_size"] > 0.5 and alert["estimated_harm"] > 15 and alert["report_url"].endswith("/report")
    assert len(alert["evidence"]["atypical_samples"]) == 10
    slack_body = json.loads(by_path["/slack"][0]["body"])
    assert "digits:v1" in slack_body["text"] and slack_body["blocks"][0]["type"] == "header"
    # Links a person clicks open the console page on the public URL, not the API's JSON (401 in a browser)
    console = f"https://shiftwatch.example.com/console/alerts/{alert_id}"
    assert alert["console_url"] == console and alert["url"] == f"https://shiftwatch.example.com/v1/alerts/{alert_id}"
    context = slack_body["blocks"][-1]["elements"][0]["text"]
    assert f"<{console}|" in context and f"<{console}/report|" in context and "/v1/" not in context
    harm = slack_body["blocks"][2]["fields"][1]["text"]
    assert "points lower" in harm  # not "-31.8 pts"
    assert harm.startswith("*Harm*\nmean confidence") and "no interval" in harm  # not called accuracy (issue 24)
    assert alert["harm"]["source"] == "confidence_drop" and alert["harm"]["sentence"] in alert["title"]
    assert SIGNATURE_HEADER not in by_path["/slack"][0]["headers"]  # no secret configured for it

    with db.session() as session:
        rows = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.url)).all()
        assert [(r.status, r.attempts) for r in rows] == [("delivered", 2), ("delivered", 1)]
        assert rows[0].last_status_code == 200 and rows[0].last_error is None

    with db.session() as session:
        alerts.resolve(session, alerts.Outbox.of(settings), alert_id, "ops", utcnow())
    assert deliver_due(db, Outbox.of(settings).endpoints, utcnow())["delivered"] == 2
    last_generic = json.loads([r for r in receiver.requests if r["path"] == "/generic"][-1]["body"])
    assert last_generic["event"] == "alert.resolved" and last_generic["alert"]["state"] == "resolved"


@pytest.mark.slow
def test_a_delivery_that_keeps_failing_is_given_up_after_max_attempts(db, settings, digits_model, receiver):
    settings = settings.model_copy(update={"alert_webhooks": [f"{receiver.url}/down"]})
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    pin_reference(db, settings, digits_model.id, start)
    add_config(db, digits_model.id)
    log(db, settings, records(start + timedelta(minutes=10), 200, shift=0.6, seed=22))
    run_due_detectors(db, settings, start + timedelta(minutes=15), registry=REGISTRY)
    receiver.statuses = [503] * MAX_ATTEMPTS
    now = utcnow()
    for attempt in range(MAX_ATTEMPTS):
        deliver_due(db, Outbox.of(settings).endpoints, now + timedelta(hours=attempt))  # well past every backoff
    with db.session() as session:
        (row,) = session.scalars(select(WebhookDelivery)).all()
    assert (row.status, row.attempts, row.last_status_code) == ("failed", MAX_ATTEMPTS, 503)
    assert "HTTP 503" in row.last_error and len(receiver.requests) == MAX_ATTEMPTS
