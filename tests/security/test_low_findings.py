"""Issue 27, item 7 (the low findings in this branch's reach): no echo of a 60 KB name, no numpy
overflow warning from a huge JSON value, a client vanishing mid-upload is not a traceback, and
artifact uploads in flight are capped."""

from __future__ import annotations

import logging
import socket
import time
import warnings

from shiftwatch.collector import artifact_upload
from tests.support.collector import as_json, records


def test_a_60_kb_model_name_is_not_echoed(api, db, digits_model) -> None:
    name = "m" * 60_000
    for response in (api.get(f"/v1/models/{name}"),
                     api.post(f"/v1/models/{name}/predict", content=b"x", headers={"content-type": "image/png"})):  # fmt: skip
        assert response.status_code == 404
        assert len(response.text) < 400 and "60000 characters" in response.json()["detail"]


def test_a_json_value_past_float32_is_refused_by_name_without_a_numpy_warning(api, db, digits_model) -> None:
    body = as_json(records(2))
    body["predictions"][1]["embedding"][3] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        response = api.post("/v1/predictions", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == "predictions[1].embedding: contains NaN or infinity"


def test_a_client_that_disconnects_mid_upload_leaves_one_line_and_nothing_behind(live_server, settings, caplog) -> None:
    host, port = live_server.url.removeprefix("http://").split(":")
    with caplog.at_level(logging.INFO):
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(b"POST /v1/artifacts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                        b"Content-Length: 100000\r\n\r\n" + b"\x08" * 1000)  # fmt: skip
            time.sleep(0.5)
        time.sleep(1.0)
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()], caplog.text
    assert not list((settings.data_dir / "artifacts" / ".incoming").glob("*.part"))


def test_uploads_past_the_cap_get_503_and_the_slots_come_back(api) -> None:
    taken = [artifact_upload._uploads.acquire(blocking=False) for _ in range(artifact_upload.MAX_UPLOADS)]
    try:
        assert all(taken)
        response = api.post("/v1/artifacts", content=b"x", headers={"content-type": "application/octet-stream"})
        assert response.status_code == 503 and response.headers["retry-after"]
    finally:
        for _ in taken:
            artifact_upload._uploads.release()
    response = api.post("/v1/artifacts", content=b"not onnx", headers={"content-type": "application/octet-stream"})
    assert response.status_code == 422  # a slot was free again, and this one gave it back too
    assert artifact_upload._uploads.acquire(blocking=False) and artifact_upload._uploads.release() is None
