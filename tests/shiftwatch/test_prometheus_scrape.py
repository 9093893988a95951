"""A real Prometheus scrapes a live server's /metrics and its query API returns the ingest, detector, alert
and rollout series; promtool accepts the exposition as it is served."""

from __future__ import annotations

import subprocess

import httpx
import pytest
from prometheus_client import REGISTRY

from shiftwatch_client.records import PredictionRecord
from tests.support.collector import as_json, records
from tests.support.console import load_demo_like_data
from tests.support.prometheus import Prometheus, binaries
from tests.support.servers import LiveServer


def value(result: list[dict]) -> float:
    return sum(float(series["value"][1]) for series in result)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_prometheus_reads_ingest_detector_alert_and_rollout_series(backend, db, settings, app, tmp_path) -> None:
    load_demo_like_data(db, settings)
    server = LiveServer(app, settings=settings).start()
    prometheus = Prometheus(f"127.0.0.1:{server.port}", tmp_path)
    try:
        before = REGISTRY.get_sample_value("shiftwatch_predictions_ingested_total", {"model": "digits"}) or 0.0
        batch: list[PredictionRecord] = records(120, seed=7)
        sent = httpx.post(f"{server.url}/v1/predictions", json=as_json(batch), timeout=30)
        assert sent.status_code == 200, sent.text

        # The counter is the process's own: earlier tests in this process may have counted too.
        ingested = prometheus.wait_for(f'shiftwatch_predictions_ingested_total{{model="digits"}} >= {before + 120}')
        assert value(ingested) == pytest.approx(before + 120)
        assert value(prometheus.wait_for('up{job="shiftwatch"}')) == 1
        ages = prometheus.wait_for('shiftwatch_detector_last_run_age_seconds{model="digits"}')
        assert all(0 <= float(s["value"][1]) < 3600 for s in ages)
        assert value(prometheus.wait_for('shiftwatch_detector_drift{model="digits"}')) >= 1  # the demo-like alert's run
        assert value(prometheus.wait_for('shiftwatch_alerts_open{model="digits"}')) >= 1
        stage = prometheus.wait_for('shiftwatch_rollout_stage{model="digits"}')
        assert [(s["metric"]["candidate"], s["metric"]["stage"]) for s in stage] == [("v2", "canary")]
        share = value(prometheus.wait_for('shiftwatch_rollout_canary_share{model="digits"}'))
        assert 0 < share <= 1
    finally:
        prometheus.stop()
        server.stop()


def test_promtool_accepts_the_served_exposition(backend, db, settings, api) -> None:
    load_demo_like_data(db, settings)
    api.post("/v1/predictions", json=as_json(records(10, seed=1)))
    served = api.get("/metrics")
    assert served.status_code == 200
    for family in ("shiftwatch_predictions_ingested_total", "shiftwatch_alerts_open", "shiftwatch_rollout_stage",
                   "shiftwatch_detector_last_run_age_seconds"):
        assert family in served.text
    _, promtool = binaries()
    checked = subprocess.run([str(promtool), "check", "metrics"], input=served.text, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
