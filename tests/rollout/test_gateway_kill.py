"""A ``kill -9`` of ``shiftwatch serve`` loses no prediction the gateway answered (issue 27, item 5): each
answered row is journaled before the answer, and the next process stores what the killed one had
not (before: one answered row lost per kill). Against a real uvicorn subprocess, on both backends."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.pg_processes import ServeProcess, stored_count
from tests.support.rollout import add_version, png_image

pytestmark = pytest.mark.slow


def test_rows_answered_just_before_a_kill_9_are_stored_by_the_next_process(db, db_url, settings) -> None:
    add_version(db, settings, "v1", state="production")
    server = ServeProcess(db_url, settings.data_dir).start()
    answered = 0
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(60):
                response = client.post("/v1/models/digits/predict", content=png_image(i),
                                       headers={"content-type": "image/png"})  # fmt: skip
                answered += response.status_code == 200
        server.kill()  # right after the last answer: the writer flushes every 200 ms
        assert answered == 60
        assert stored_count(db) < answered, "the kill came too late to cut anything off; the test proves nothing"
        server = ServeProcess(db_url, settings.data_dir, port=server.port).start()
        deadline = time.monotonic() + 60
        while stored_count(db) < answered and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
    assert stored_count(db) == answered
