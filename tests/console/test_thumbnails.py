"""Issue 23 (10): the alert page's thumbnails keep the inputs' aspect ratio (a 192x48 text line is not squashed square)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from tests.console.test_browser import browser_context, page  # noqa: F401 - the real Chromium fixtures
from tests.support.console import open_drift_alert

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"])]


def stored_pngs(settings, width: int, height: int, n: int) -> list[str]:
    store = InputStore(settings.data_dir)
    refs = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), (40 * i % 255, 90, 160)).save(buffer, format="PNG")
        refs.append(store.put(buffer.getvalue()))
    return refs


@pytest.mark.parametrize(("width", "height"), [(192, 48), (32, 32), (48, 96)])
def test_alert_thumbnails_keep_the_input_aspect_ratio(page, live_server, db, settings, width, height) -> None:  # noqa: F811
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        version_id = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production").id
    open_drift_alert(db, settings, version_id, input_refs=stored_pngs(settings, width, height, 8))
    page.goto(f"{live_server.url}/console/alerts")
    page.click("td a >> nth=0")
    page.wait_for_load_state("networkidle")
    boxes = page.eval_on_selector_all(
        "#atypical img, #reference-examples img",
        "els => els.map(e => [e.naturalWidth, e.getBoundingClientRect().width, e.getBoundingClientRect().height])",
    )
    assert boxes and all(natural == width for natural, _, _ in boxes)  # the stored images, loaded
    for _, shown_width, shown_height in boxes:  # border included: 1 px each side
        assert (shown_width - 2) / (shown_height - 2) == pytest.approx(width / height, rel=0.03)
        assert shown_height - 2 == pytest.approx(64, abs=1)
