"""The detectors' HTTP API through the real ASGI app: alerts, detector configs, reference windows."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest

from shiftwatch.db import utcnow
from shiftwatch.detectors.runs import run_due_detectors
from tests.support.drift_scenario import REGISTRY, add_config, log, pin_reference, records


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.slow
def test_alert_api_lists_gets_serves_the_report_acknowledges_and_resolves(api, db, settings, digits_model):
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    pin_reference(db, settings, digits_model.id, start)
    add_config(db, digits_model.id)
    log(db, settings, records(start + timedelta(minutes=10), 200, shift=0.6, confidence=0.7, seed=31))
    (alert_id,) = run_due_detectors(db, settings, start + timedelta(minutes=15), registry=REGISTRY).opened

    listed = api.get("/v1/alerts", params={"state": "open", "model": "digits", "version": "v1"}).json()
    assert [a["id"] for a in listed] == [alert_id]
    assert [a["id"] for a in api.get("/v1/alerts", params={"model": "digits"}).json()] == [alert_id]
    assert api.get("/v1/alerts", params={"version": "v1"}).status_code == 422
    alert = api.get(f"/v1/alerts/{alert_id}").json()
    assert alert["severity"] == "high" and alert["estimated_harm"] > 15 and alert["effect_size"] > 0.5
    assert alert["effect_unit"] == "% of reference kernel spread" and alert["p_value"] <= 0.05
    assert alert["report_url"].endswith(f"/v1/alerts/{alert_id}/report")
    assert len(alert["evidence"]["atypical_samples"]) == 10 and alert["evidence"]["shifted_dimensions"]

    report = api.get(f"/v1/alerts/{alert_id}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "Share of Drifted Columns" in report.text

    acked = api.post(f"/v1/alerts/{alert_id}/acknowledge", json={}).json()
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "local-admin"
    assert api.get("/v1/alerts", params={"state": "open"}).json() == []
    resolved = api.post(f"/v1/alerts/{alert_id}/resolve", json={}).json()
    assert resolved["state"] == "resolved" and resolved["resolved_at"] is not None
    assert api.post(f"/v1/alerts/{alert_id}/resolve", json={}).status_code == 200  # idempotent
    assert api.post(f"/v1/alerts/{alert_id}/acknowledge", json={}).status_code == 409

    assert api.get("/v1/alerts/99999").status_code == 404
    assert api.get("/v1/alerts/99999/report").status_code == 404
    assert api.get("/v1/alerts", params={"state": "sleeping"}).status_code == 422
    runs = api.get(f"/v1/detector-configs/{alert['config_id']}/runs").json()
    assert len(runs) == 1 and runs[0]["decision"] is True and runs[0]["adjusted_p_value"] is not None
    assert runs[0]["significant"] is True and runs[0]["severity"] in ("low", "medium", "high")


def test_detector_config_api_creates_lists_patches_and_refuses_bad_configs(api, digits_model):
    body = {"model": "digits", "version": "v1", "detector": "mmd", "window_last_n": 500, "params": {"n_permutations": 200}}
    created = api.post("/v1/detector-configs", json=body)
    assert created.status_code == 201, created.text
    config = created.json()
    assert (config["name"], config["input"], config["min_effect"], config["confirm_runs"]) == ("mmd", "embeddings", None, 2)
    assert api.post("/v1/detector-configs", json=body).status_code == 409

    refused = {
        "unknown detector": {**body, "name": "x", "detector": "magic"},
        "two windows": {**body, "name": "y", "window_minutes": 5},
        "bad params": {**body, "name": "z", "params": {"no_such_param": 1}},
        "bad alpha": {**body, "name": "w", "alpha": 1.5},
        "unknown model": {**body, "name": "v", "model": "nope"},
    }
    for why, bad in refused.items():
        assert api.post("/v1/detector-configs", json=bad).status_code in (404, 422), why

    patched = api.patch(f"/v1/detector-configs/{config['id']}", json={"enabled": False, "window_minutes": 30})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["enabled"], patched.json()["window_minutes"], patched.json()["window_last_n"]) == (False, 30, None)
    assert api.patch(f"/v1/detector-configs/{config['id']}", json={"detector": "lsdd"}).status_code == 422
    assert [c["id"] for c in api.get("/v1/detector-configs", params={"model": "digits", "version": "v1"}).json()] == [
        config["id"]
    ]
    assert api.get(f"/v1/detector-configs/{config['id']}/runs").json() == []


def test_reference_api_pins_uploads_and_time_ranges_and_refuses_bad_files(api, db, settings, digits_model):
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=120)
    files = {
        "probabilities": ("p.npy", npy(probabilities)),
        "embeddings": ("e.npy", npy(rng.normal(size=(120, 64)).astype(np.float32))),
        "labels": ("y.npy", npy(rng.integers(0, 10, 120))),
    }
    pinned = api.put("/v1/models/digits/versions/v1/reference/upload", files=files)
    assert pinned.status_code == 200, pinned.text
    assert (pinned.json()["n"], pinned.json()["source"], pinned.json()["has_labels"]) == (120, "upload", True)
    assert api.get("/v1/models/digits/versions/v1/reference").json()["fingerprint"] == pinned.json()["fingerprint"]

    bad = {
        "wrong width": {**files, "embeddings": ("e.npy", npy(np.zeros((120, 5))))},
        "wrong rows": {**files, "labels": ("y.npy", npy(np.zeros(7)))},
        "not npy": {**files, "probabilities": ("p.npy", b"hello")},
        "pickle": {**files, "probabilities": ("p.npy", npy(np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True))},
    }
    for why, upload in bad.items():
        assert api.put("/v1/models/digits/versions/v1/reference/upload", files=upload).status_code == 422, why

    start = (utcnow() - timedelta(hours=1)).replace(microsecond=0)
    log(db, settings, records(start, 80, seed=32))
    ranged = api.put(
        "/v1/models/digits/versions/v1/reference",
        json={"start": start.isoformat(), "end": (start + timedelta(minutes=5)).isoformat()},
    )
    assert ranged.status_code == 200, ranged.text
    assert (ranged.json()["n"], ranged.json()["source"], ranged.json()["embedding_dim"]) == (80, "time_range", 64)
    empty = {"start": (start - timedelta(days=3)).isoformat(), "end": (start - timedelta(days=2)).isoformat()}
    assert api.put("/v1/models/digits/versions/v1/reference", json=empty).status_code == 422
    assert api.get("/v1/models/digits/versions/v9/reference").status_code == 404
