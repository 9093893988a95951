"""The console in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against real uvicorn."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser_context() -> Iterator:  # type: ignore[type-arg]
    """One Chromium per module, with a fresh profile folder; skipped where Chromium or Playwright is absent."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="sw-chromium-")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context) -> Iterator:  # type: ignore[no-untyped-def, type-arg]
    page = browser_context.new_page()
    yield page
    page.close()


def assert_not_blank(png: bytes) -> None:
    """A rendered page has text and colour: its grey levels vary (a blank or failed page does not)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    assert pixels.std() > 10, f"screenshot looks blank (grey-level std {pixels.std():.1f})"


def screenshot(page, tmp_path: Path, name: str) -> bytes:  # type: ignore[no-untyped-def]
    png = page.screenshot(full_page=True)
    (tmp_path / f"{name}.png").write_bytes(png)
    assert_not_blank(png)
    return png


def test_models_page_shows_each_version_with_its_state(page, live_server, digits_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/console")
    assert page.url.endswith("/console/models")
    state = page.locator('span.state[data-version="v1"]')
    assert state.inner_text() == "production"
    screenshot(page, tmp_path, "models")


def test_every_console_page_renders_in_the_browser(page, live_server, digits_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("models", "alerts", "labeling", "rollouts"):
        response = page.goto(f"{live_server.url}/console/{name}")
        assert response is not None and response.status == 200, name
        assert page.locator("h1").count() == 1
        screenshot(page, tmp_path, name)
