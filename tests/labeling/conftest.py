"""The real Label Studio 1.23.2 the labeling tests talk to: one server per test session, on 127.0.0.1.

The server lives in its own venv (``tests/support/studio_venv.sh`` builds ``.labelstudio-venv/``;
``SHIFTWATCH_TEST_LABEL_STUDIO_VENV`` points elsewhere). Without it these tests skip locally
and FAIL under ``CI=true``: CI must not pass without having talked to Label Studio.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import LiveServer, free_port
from tests.support.studio_server import LabelStudioServer, label_studio_bin

VENV = Path(os.environ.get("SHIFTWATCH_TEST_LABEL_STUDIO_VENV", Path(__file__).parents[2] / ".labelstudio-venv"))


@pytest.fixture(scope="session")
def label_studio() -> Iterator[LabelStudioServer]:
    if label_studio_bin(VENV) is None:
        reason = f"Label Studio is not installed in {VENV} (run tests/support/studio_venv.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: required in CI")
        pytest.skip(reason)
    server = LabelStudioServer(VENV)
    try:
        server.start()
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Label Studio did not start: {exc}")
        pytest.skip(f"Label Studio did not start: {exc}")
    yield server
    server.stop()


@pytest.fixture
def wired(label_studio, db, settings, tmp_path):
    """shiftwatch served on loopback (for the webhook and the images), pointed at the real Label Studio."""
    from shiftwatch.app import create_app

    port = free_port()
    settings = settings.model_copy(
        update={
            "public_url": f"http://127.0.0.1:{port}",
            "label_studio_url": label_studio.url,
            "label_studio_token": label_studio.token,
        }
    )
    server = LiveServer(create_app(settings, db), port=port).start()
    yield settings
    server.stop()
