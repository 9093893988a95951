"""A triager in a real Chromium against the real Label Studio: the image shows, the class's key answers, the label arrives.

shiftwatch is a real uvicorn on loopback (its image links and webhook), Label Studio the real
1.23.2 server of ``conftest.label_studio``; the person logs in with its test user. With
``SHIFTWATCH_TRIAGE_SCREENSHOTS=<folder>`` the screenshots also land there (docs/img/ was made so).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.examples.digits import corrupt, encode_png, load_digits_images
from shiftwatch.labeling.oracle import label_with_oracle
from shiftwatch.labeling.policy import QueueItem, enqueue
from shiftwatch.labeling.sync import push
from shiftwatch.labeling.tables import Label, LabelTask
from tests.support.browser import assert_not_blank, chromium_context
from tests.support.console import open_drift_alert
from tests.support.labeling import eventually, log, probs_with_margin

pytestmark = [pytest.mark.browser, pytest.mark.labelstudio, pytest.mark.slow]

CLASSES = [str(i) for i in range(10)]
TRUTH = [7, 2, 4, 9]  # the drifted digits queued below, most urgent first
SCREENSHOTS = os.environ.get("SHIFTWATCH_TRIAGE_SCREENSHOTS")


@pytest.fixture
def backend() -> str:
    """One backend: the browser path is the same code on both (test_studio.py covers PostgreSQL)."""
    return "sqlite"


@pytest.fixture
def page(label_studio) -> Iterator:
    """A Chromium page logged in to Label Studio as its test user."""
    with chromium_context(viewport={"width": 1400, "height": 1000}) as context:
        page = context.new_page()
        # Label Studio's tips panel asks its server for /heidi-tips/, which fetches them from GitHub (no
        # setting turns that off): the browser answers it here, so the server never calls out.
        page.route("**/heidi-tips**", lambda route: route.fulfill(status=404, body="{}"))
        page.goto(f"{label_studio.url}/user/login")
        page.fill('input[name="email"]', label_studio.username)
        page.fill('input[name="password"]', label_studio.password)
        page.click('button[type="submit"]')
        page.wait_for_url(lambda url: "/user/login" not in url)
        yield page


def drifted_digits(db, settings, name: str) -> list[uuid.UUID]:
    """Four real digits under a strong contrast drift (unreadable as logged), each predicted wrong."""
    images, labels = load_digits_images()
    picks = [int(np.flatnonzero(labels == digit)[0]) for digit in TRUTH]
    drifted = corrupt(images[picks], "contrast", 5, np.random.default_rng(0))
    store = InputStore(settings.data_dir)
    refs = [store.put(encode_png(image), "png") for image in drifted]
    probabilities = np.stack([probs_with_margin((digit + 1) % 10, 0.2) for digit in TRUTH])
    return log(db, settings, probabilities, np.eye(4, 64), input_refs=refs, model=name)


def shot(page, tmp_path: Path, name: str) -> None:
    png = page.screenshot()
    (tmp_path / f"{name}.png").write_bytes(png)
    if SCREENSHOTS:
        Path(SCREENSHOTS, f"{name}.png").write_bytes(png)


def test_a_triager_sees_the_image_answers_by_key_and_the_label_reaches_shiftwatch(
    db, wired, label_studio, page, tmp_path: Path
) -> None:
    name = f"digits-{uuid.uuid4().hex[:8]}"
    with db.session() as session:
        registry.register_model(session, name, CLASSES)
        version_id = registry.register_version(session, name, "v1", embedding_dim=64, state="production").id
    open_drift_alert(db, wired, version_id, model=name)  # the drift these samples were queued under
    ids = drifted_digits(db, wired, name)
    with db.session() as session:  # first push: a disagreement (the oracle will answer it) and two uncertain samples
        enqueue(session, version_id, [QueueItem(ids[0], 0.9, {"production_class": 7, "candidate_class": 8})],
                "disagreement")
        enqueue(session, version_id, [QueueItem(ids[i], s, {"margin": 0.2}) for i, s in ((2, 0.6), (3, 0.3))], "uncertain")
    first = push(db, wired, name)
    with db.session() as session:
        assert label_with_oracle(session, name, lambda ref: TRUTH[0], limit=1) == 1  # the disagreement, labeled here
    assert push(db, wired, name).closed == 1  # ... and closed in Label Studio, not left open
    with db.session() as session:  # a later push brings the most urgent open task
        enqueue(session, version_id, [QueueItem(ids[1], 0.5, {"production_class": 2, "candidate_class": 3})],
                "disagreement")
    assert push(db, wired, name).sent == 1

    page.goto(f"{label_studio.url}/projects/{first.project_id}/data")
    page.get_by_text("Tasks: 4 / 4").wait_for()
    assert page.get_by_text("disagreement", exact=True).count() == 2  # the reason column, in the table itself
    shot(page, tmp_path, "triage-queue")
    page.get_by_text("Label All Tasks").first.click()
    headline = page.get_by_text("Priority ").first
    headline.wait_for()
    # The stream follows priority across pushes: not the oldest task, not the one the oracle answered.
    assert headline.inner_text().startswith("Priority 3.50 of 4 · disagreement: production says 2, the candidate says 3")
    page.wait_for_function(
        "() => [...document.images].filter(i => i.src.startsWith('blob:') && i.naturalWidth > 0).length >= 2",
        timeout=30_000,
    )
    shown = page.evaluate("() => [...document.images].filter(i => i.src.startsWith('blob:'))"
                          ".map(i => [i.naturalWidth, i.getBoundingClientRect().width])")
    assert shown == [[32, 256], [32, 256]]  # the input and its stretched copy, loaded, at 8x
    assert page.get_by_text("Why it is here:").count() == 1
    alert_link = page.get_by_role("link", name=re.compile(r"^alert #\d+: "))
    assert alert_link.get_attribute("href").startswith(f"{wired.public_url}/console/alerts/")
    shot(page, tmp_path, "triage-task")
    assert_not_blank(page.locator("img[src^='blob:']").nth(1).screenshot())  # the stretched copy shows the digit

    page.keyboard.press(str(TRUTH[1]))  # the digit's own key (the model's pre-annotation said 3)
    checked = page.locator("input[type=radio]:checked")
    assert checked.count() == 1 and checked.evaluate("e => e.closest('label').innerText").startswith(str(TRUTH[1]))
    page.keyboard.press("Control+Enter")

    def stored() -> tuple[str, int, str, str] | None:
        with db.session() as session:
            task = session.scalar(select(LabelTask).where(LabelTask.prediction_id == ids[1]))
            label = session.scalar(select(Label).where(Label.task_id == task.id))
            return None if label is None else (task.state, label.label, label.source, label.annotator)

    assert eventually(lambda: stored() is not None, timeout_s=20)
    assert stored() == ("labeled", TRUTH[1], "webhook", f"label-studio:{label_studio.user_id()}")
    page.get_by_text("Priority 1.60 of 4").wait_for()  # the next one in line: the higher uncertain sample
