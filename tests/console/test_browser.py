"""The console in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against real uvicorn."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.browser import assert_not_blank, chromium_context

# The console is the same code on both backends (the domains' tests cover PostgreSQL); one
# browser pass on SQLite keeps this module's time down.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"])]


@pytest.fixture(scope="module")
def browser_context() -> Iterator:
    """One Chromium per module; skipped where Chromium or Playwright is absent (failed in CI)."""
    with chromium_context() as context:
        yield context


@pytest.fixture
def page(browser_context) -> Iterator:
    page = browser_context.new_page()
    yield page
    page.close()


def screenshot(page, tmp_path: Path, name: str) -> bytes:
    png = page.screenshot(full_page=True)
    (tmp_path / f"{name}.png").write_bytes(png)
    assert_not_blank(png)
    return png


def test_models_page_shows_each_version_with_its_state(page, live_server, digits_model, tmp_path: Path) -> None:
    page.goto(f"{live_server.url}/console")
    assert page.url.endswith("/console/models")
    state = page.locator('span.state[data-version="v1"]')
    assert state.inner_text() == "production"
    screenshot(page, tmp_path, "models")


def test_every_console_page_renders_in_the_browser(page, live_server, digits_model, tmp_path: Path) -> None:
    for name in ("models", "alerts", "labeling", "rollouts"):
        response = page.goto(f"{live_server.url}/console/{name}")
        assert response is not None and response.status == 200, name
        assert page.locator("h1").count() == 1
        screenshot(page, tmp_path, name)


def post_images(app, server_url: str, bodies: list[bytes], first: int = 0) -> None:
    """Each PNG through the real gateway over HTTP, one client key each; returns once shadow copies and logs are written."""
    import httpx

    gateway = app.state.gateway
    gateway.refresh("digits")
    for i, body in enumerate(bodies, start=first):
        response = httpx.post(f"{server_url}/v1/models/digits/predict", content=body,
                              headers={"content-type": "image/png", "x-client-key": f"client-{i}"})
        assert response.status_code == 200, response.text
    time.sleep(0.3)  # shadow copies run after the production answer
    assert gateway.writer.flush()


def add_rollout_versions(db, settings) -> int:
    """digits v1 in production and v2 a registered candidate (tiny real ONNX classifiers); returns v1's id."""
    from tests.support.rollout import add_version

    v1_id = add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", noise=0.05)
    return v1_id


def drive_to_approval(db, settings, app, server_url: str) -> int:
    """A rollout of v2 driven through shadow and one canary step until it awaits approval; returns its id."""
    from shiftwatch.rollout import controller
    from shiftwatch.rollout.schemas import RolloutPlan
    from tests.support.rollout import png_image

    # Half the traffic in the one canary step, so both arms have rows to compare.
    plan = RolloutPlan(canary_steps=[0.5], min_shadow_pairs=10, min_step_predictions=10, require_labels=False)
    with db.session() as session:
        rollout_id = controller.start_rollout(session, settings.data_dir, "digits", "v2", plan, actor="alice").id
    for offset in (0, 100):  # shadow, then the canary step
        post_images(app, server_url, [png_image(i) for i in range(offset, offset + 40)], first=offset)
        controller.tick(db)
    with db.session() as session:
        assert controller.get_rollout(session, rollout_id).last_decision["decision"] == "await_approval"
    return rollout_id


def rollout_awaiting_approval(db, settings, app, server_url: str) -> int:
    """v1 production, v2 candidate, driven through shadow and one canary step until it awaits approval."""
    add_rollout_versions(db, settings)
    return drive_to_approval(db, settings, app, server_url)


def test_rollout_page_shows_the_evidence_and_approval_needs_a_reason_and_confirmation(
    page, live_server, app, db, settings, tmp_path: Path
) -> None:
    rollout_id = rollout_awaiting_approval(db, settings, app, live_server.url)
    page.goto(f"{live_server.url}/console/rollouts/{rollout_id}")
    assert page.locator("#rollout-state").inner_text() == "canary"
    assert "controller says await_approval" in page.locator("#rollout-standing").inner_text()
    # Thresholds from this rollout's plan beside each value, differences with intervals.
    latency = page.locator('#evidence tr[data-metric="latency_p99_ms"]')
    assert "at most 50 ms" in latency.locator("td.guardrail").inner_text()
    assert re.fullmatch(r"[+-]\d+\.\d+ \[[+-]\d+\.\d+, [+-]\d+\.\d+\]", latency.locator("td.difference").inner_text())
    confidence = page.locator('#evidence tr[data-metric="mean_confidence"] td.difference').inner_text()
    low, high = (float(v) for v in re.findall(r"[+-]\d+\.\d+", confidence)[1:])
    assert low < high
    assert "random labeling slice" in page.locator("main").inner_text()
    assert "50% of traffic" in page.locator("#plan tr.current").inner_text()
    assert page.locator("svg[aria-label='Confidence distribution']").count() == 1
    # The Evidently report is linked, and framed as a comparison rather than a drift alarm.
    page.click("#comparison-link")
    page.wait_for_selector("#shiftwatch-comparison-note")
    assert "not an alarm" in page.locator("#shiftwatch-comparison-note").inner_text()
    page.wait_for_timeout(1500)  # Evidently draws its widgets with its own script
    screenshot(page, tmp_path, "rollout-comparison")
    assert "Dataset Drift is detected" not in page.locator("body").inner_text()
    page.click("#back-to-rollout")
    # No labels: the accuracy test is undecided, so Approve comes with a warning and a required reason.
    assert "accuracy test is undecided" in page.locator("#undecided-warning").inner_text()
    screenshot(page, tmp_path, "rollout-canary")
    page.click("button.approve")  # empty reason, box unticked: the browser does not send the form
    assert page.locator("#rollout-state").inner_text() == "canary"
    page.fill("form.decision input[name=reason]", "labels for the new camera arrive next week")
    page.click("button.approve")  # still unticked
    assert page.locator("#rollout-state").inner_text() == "canary"
    page.check("form.decision input[name=confirm]")
    page.click("button.approve")
    page.wait_for_load_state()
    assert page.locator("#rollout-state").inner_text() == "production"
    assert "Approved by local-admin" in page.locator(".flash").inner_text()
    standing = page.locator("#rollout-standing").inner_text()
    assert standing.startswith("production: approved by local-admin") and "await_approval" not in page.content()
    assert "labels for the new camera arrive next week" in page.locator("#audit tr:last-child").inner_text()
    assert page.locator("button.approve").count() == 0
    screenshot(page, tmp_path, "rollout-promoted")
    page.goto(f"{live_server.url}/console/models")
    assert page.locator('span.state[data-version="v2"]').inner_text() == "production"
    assert page.locator('span.state[data-version="v1"]').inner_text() == "retired"


def test_console_approval_without_confirmation_or_needed_reason_changes_nothing(
    page, live_server, app, db, settings
) -> None:
    """Posting past the browser's checks (no box, or no reason) is refused by the server too."""
    rollout_id = rollout_awaiting_approval(db, settings, app, live_server.url)
    page.goto(f"{live_server.url}/console/rollouts/{rollout_id}")
    token = page.locator("form.decision input[name=csrf_token]").first.get_attribute("value")
    url = f"{live_server.url}/console/rollouts/{rollout_id}/approve"
    unconfirmed = page.request.post(url, form={"csrf_token": token, "reason": "fine"})
    assert "tick the confirmation box" in unconfirmed.text()
    no_reason = page.request.post(url, form={"csrf_token": token, "confirm": "yes"})
    assert "accuracy test is undecided" in no_reason.text()
    page.goto(f"{live_server.url}/console/rollouts/{rollout_id}")
    assert page.locator("#rollout-state").inner_text() == "canary"


def test_alert_is_acknowledged_then_resolved_from_its_page(page, live_server, db, settings, tmp_path: Path) -> None:
    from tests.support.console import load_demo_like_data

    load_demo_like_data(db, settings)
    page.goto(f"{live_server.url}/console/alerts")
    page.click("td a >> nth=0")
    assert page.locator("#alert-state").inner_text() == "open"
    assert page.locator("iframe.report").count() == 1  # the Evidently report, inline
    # ...and loaded: every other answer says X-Frame-Options DENY, this route SAMEORIGIN.
    report_frame = page.locator("iframe.report").element_handle().content_frame()
    assert report_frame is not None
    for _ in range(600):  # the report is a few MB: under load its navigation starts after the page's load event
        if report_frame.url.startswith(live_server.url):
            break
        page.wait_for_timeout(100)
    report_frame.wait_for_load_state("load")
    assert report_frame.url.startswith(live_server.url), report_frame.url
    assert "Share of Drifted Columns" in report_frame.content()
    screenshot(page, tmp_path, "alert-open")
    page.click("text=Acknowledge")
    assert page.locator("#alert-state").inner_text() == "acknowledged"
    assert "acknowledged by local-admin" in page.locator(".flash").inner_text()
    page.click("text=Resolve")
    assert page.locator("#alert-state").inner_text() == "resolved"
    page.goto(f"{live_server.url}/console/labeling")
    assert int(page.locator('table.queue td[data-state="labels"]').inner_text()) > 0
    screenshot(page, tmp_path, "labeling")


def test_alert_page_says_what_drifted_plots_its_history_and_leads_to_the_labeling_queue(
    page, live_server, db, settings, tmp_path: Path
) -> None:
    """Issue 17: words instead of dimension numbers, accuracy with its method, plots over time, exemplars, next step."""
    from shiftwatch.db import utcnow
    from shiftwatch.detectors.runs import run_due_detectors
    from tests.support.collector import store_predictions
    from tests.support.console import load_demo_like_data, predictions

    load_demo_like_data(db, settings)
    for step in range(2):  # two more runs on new shifted traffic: a history to plot
        store_predictions(db, settings, predictions("v1", 300, shift=0.8, seed=20 + step, minutes_ago=4 - 2 * step))
        assert run_due_detectors(db, settings, utcnow() + timedelta(minutes=step + 1)).runs == 1
    page.goto(f"{live_server.url}/console/alerts")
    harm = page.locator("table tr >> nth=1").locator("td >> nth=6").inner_text()  # the score the list is ranked by
    page.click("td a >> nth=0")
    words = page.locator("#what-drifted").inner_text()
    assert "embeddings moved" in words and "reference standard deviations" in words and "Severity" in words
    accuracy = page.locator("#accuracy-estimate").inner_text()
    assert "points higher than on the reference" in accuracy and "mean confidence" in accuracy and "pts" not in accuracy
    assert harm.endswith("(confidence drop)")  # the list says which kind of score it ranks by, not "accuracy"
    assert float(page.locator("#harm-value").inner_text()) == pytest.approx(float(harm.split()[0]), abs=0.05)
    for plot in ("#history-plot", "#accuracy-plot"):  # the detector's history and the estimate, over time
        assert page.locator(f"{plot} svg polyline").count() == 1 and "alert opened" in page.locator(plot).inner_text()
    captions = page.locator("#atypical figcaption").all_inner_texts()
    assert len(captions) == 10 and all(c.startswith("predicted ") for c in captions)
    assert page.locator("#reference-examples figure").count() == 6
    screenshot(page, tmp_path, "alert-explained")
    page.click("#next-step a")
    assert page.url.endswith("/console/labeling")


def test_with_auth_on_a_browser_logs_in_with_a_token_and_needs_the_approve_scope(
    page, db, settings, tmp_path: Path
) -> None:
    from shiftwatch.app import create_app
    from shiftwatch.tokens import create_token
    from tests.support.servers import LiveServer

    secured = settings.model_copy(update={"auth_required": True, "secret_key": "81NLxhc7bYxa_oYuVCtZnfHfc8neP7QFTFm6HTXU"})
    reader = create_token(db, "reader", ["read"])
    server = LiveServer(create_app(secured, db)).start()
    try:
        page.context.clear_cookies()
        page.goto(f"{server.url}/console/models")
        assert "/console/login" in page.url
        page.fill("input[name=token]", "sw_wrong")
        page.click("button[type=submit]")
        assert "unknown or revoked" in page.locator("[role=alert]").inner_text()
        page.fill("input[name=token]", reader)
        page.click("button[type=submit]")
        assert page.url.endswith("/console/models")
        screenshot(page, tmp_path, "models-logged-in")
        response = page.request.post(f"{server.url}/console/rollouts/1/approve", form={"reason": "x"})
        assert response.status == 403  # a reader may look, not approve (and this post has no CSRF token)
    finally:
        page.context.clear_cookies()
        server.stop()


def bright_png(seed: int) -> bytes:
    """A washed-out camera frame: the noise of ``png_image`` squeezed into the top fifth of the grey range."""
    pixels = (200 + np.random.default_rng(seed).random((32, 32)) * 55).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def drift_alert_with_webhook(db, settings, app, server_url: str, receiver_url: str) -> int:
    """v1 serves normal then washed-out images through the gateway; two MMD runs open and update an alert,
    whose webhook goes to a loopback receiver; serve's labeling job then queues the flagged samples."""
    from shiftwatch.db import utcnow
    from shiftwatch.detectors import configs, references
    from shiftwatch.detectors.alerts import Outbox
    from shiftwatch.detectors.runs import run_due_detectors
    from shiftwatch.detectors.webhooks import deliver_due
    from shiftwatch.labeling.job import run_labeling_cycle
    from tests.support.rollout import png_image

    hooked = settings.model_copy(update={"alert_webhooks": [f"{receiver_url}/hook"], "public_url": server_url})
    v1_id = add_rollout_versions(db, settings)
    start = utcnow()
    post_images(app, server_url, [png_image(1000 + i) for i in range(80)])
    with db.session() as session:
        references.pin_time_range(session, v1_id, start, utcnow())
        configs.create(session, v1_id, "mmd", window_last_n=40, schedule_seconds=1, confirm_runs=1)
    for step in range(2):  # two windows of new samples: a history to plot
        post_images(app, server_url, [bright_png(2000 + 40 * step + i) for i in range(40)])
        report = run_due_detectors(db, hooked, utcnow() + timedelta(minutes=step))
        assert report.runs == 1 and report.flagged == 1, report
    assert deliver_due(db, Outbox.of(hooked).endpoints, utcnow())["delivered"] >= 1
    run_labeling_cycle(db, settings, utcnow())  # what serve's labeling job does next
    return v1_id


def test_an_operator_walks_from_the_webhook_to_an_approved_rollout(
    page, live_server, app, db, settings, tmp_path: Path
) -> None:
    """Issue 17's done-when: webhook link -> alert page (plots over time, exemplars) -> labeling queue ->
    rollout page (thresholds, intervals) -> approve with a confirmed reason -> the state the controller holds."""
    import json

    from sqlalchemy import select

    from shiftwatch.rollout import controller
    from shiftwatch.rollout.tables import AuditLog
    from tests.support.webhook_receiver import Receiver

    receiver = Receiver()
    try:
        drift_alert_with_webhook(db, settings, app, live_server.url, receiver.url)
    finally:
        receiver.close()
    payload = json.loads(receiver.requests[0]["body"])
    assert payload["event"] == "alert.opened"
    link = payload["alert"]["console_url"]
    assert link == f"{live_server.url}/console/alerts/{payload['alert']['id']}"

    page.goto(link)  # the link a person clicks in the webhook's message
    assert page.locator("#alert-state").inner_text() == "open"
    for plot in ("#history-plot", "#accuracy-plot"):
        assert page.locator(f"{plot} svg polyline").count() == 1 and "alert opened" in page.locator(plot).inner_text()
    atypical = page.locator("#atypical img")
    assert atypical.count() == len(payload["alert"]["evidence"]["atypical_samples"]) > 0
    assert page.locator("#reference-examples img").count() > 0
    page.wait_for_load_state("networkidle")
    loaded = page.eval_on_selector_all("#atypical img, #reference-examples img", "els => els.map(e => e.naturalWidth)")
    assert loaded and all(width > 0 for width in loaded)  # the stored input images themselves, not broken links
    screenshot(page, tmp_path, "walk-alert")

    page.click("#next-step a")
    assert page.url.endswith("/console/labeling")
    queue = page.locator("main").inner_text()
    flagged = re.search(r"(\d+) flagged", queue)
    assert flagged is not None and int(flagged.group(1)) > 0, queue
    assert page.locator("table tr td:nth-child(2)", has_text="flagged").count() > 0
    screenshot(page, tmp_path, "walk-labeling")

    rollout_id = drive_to_approval(db, settings, app, live_server.url)
    page.goto(f"{live_server.url}/console/rollouts")
    page.click(f"a[href$='/console/rollouts/{rollout_id}']")
    assert "at most 50 ms" in page.locator('#evidence tr[data-metric="latency_p99_ms"] td.guardrail').inner_text()
    difference = page.locator('#evidence tr[data-metric="latency_p99_ms"] td.difference').inner_text()
    assert re.fullmatch(r"[+-]\d+\.\d+ \[[+-]\d+\.\d+, [+-]\d+\.\d+\]", difference)
    assert "50% of traffic" in page.locator("#plan tr.current").inner_text()

    reason = "drifted camera fixed; canary clean on 40 requests"
    page.fill("form.decision input[name=reason]", reason)
    page.check("form.decision input[name=confirm]")
    page.click("button.approve")
    page.wait_for_load_state()
    with db.session() as session:
        held = controller.get_rollout(session, rollout_id).state
        approved = session.scalars(
            select(AuditLog).where(AuditLog.rollout_id == rollout_id, AuditLog.action == "approve")
        ).one()
        assert approved.reason == reason and approved.actor == "local-admin"
    assert held == "production" and page.locator("#rollout-state").inner_text() == held
    assert "await_approval" not in page.content()
    assert reason in page.locator("#audit tr:last-child").inner_text()
    screenshot(page, tmp_path, "walk-approved")
