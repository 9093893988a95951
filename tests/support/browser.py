"""A real headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright.

A missing Chromium or Playwright skips locally and fails under ``CI=true``: CI must not pass
without having run the browser tests.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextmanager
def chromium_context(viewport: dict[str, int] | None = None) -> Iterator:
    """A Playwright browser context in Chromium with a fresh profile folder, removed afterwards."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs Debian's chromium for the browser tests (apt-get install -y chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    if os.environ.get("CI") == "true":
        import playwright.sync_api as sync_api  # in CI a missing Playwright is a failure, not a skip
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="sw-chromium-")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport=viewport or {"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def assert_not_blank(png: bytes) -> None:
    """A rendered page has text and colour: its grey levels vary (a blank or failed page does not)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    assert pixels.std() > 10, f"screenshot looks blank (grey-level std {pixels.std():.1f})"
