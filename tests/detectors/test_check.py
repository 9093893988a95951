"""On-demand checks (issue 17): ``POST /v1/models/{m}/versions/{v}/check`` and ``shiftwatch check``; serve's PUBLIC_URL note."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from shiftwatch.db import utcnow
from shiftwatch.detectors.links import served_public_url
from tests.support.drift_scenario import add_config, log, pin_reference, records


def test_check_runs_the_versions_detectors_now_then_says_no_new_data(api, db, settings, digits_model):
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    pin_reference(db, settings, digits_model.id, start)
    config_id = add_config(db, digits_model.id, detector="ks_features", schedule_seconds=3600)
    log(db, settings, records(utcnow() - timedelta(minutes=5), 200, shift=0.6, seed=31))

    first = api.post("/v1/models/digits/versions/v1/check", json={})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [r["config_id"] for r in body["runs"]] == [config_id] and body["quiet"] == []
    assert body["runs"][0]["status"] == "ok" and body["runs"][0]["decision"] is True
    assert len(body["opened"]) == 1  # confirm_runs=1 in this scenario

    again = api.post("/v1/models/digits/versions/v1/check", json={}).json()
    assert again["runs"] == [] and again["opened"] == []
    assert again["quiet"] == [{"config_id": config_id, "name": "ks_features", "note": f"no new data since run {body['runs'][0]['id']}"}]
    listed = api.get("/v1/detector-configs").json()
    assert listed[0]["check_note"].startswith("no new data since run")
    assert len(api.get(f"/v1/detector-configs/{config_id}/runs").json()) == 1


def test_check_refuses_an_unknown_version_or_one_without_detectors(api, digits_model):
    unknown = api.post("/v1/models/digits/versions/v9/check", json={})
    assert unknown.status_code == 404 and "v9" in unknown.text
    bare = api.post("/v1/models/digits/versions/v1/check", json={})
    assert bare.status_code == 409 and "no enabled detector config" in bare.json()["detail"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | env
    return subprocess.run(
        [sys.executable, "-c", "from shiftwatch.cli import main; main()", *args],
        capture_output=True, text=True, env=full_env, timeout=180,
    )  # fmt: skip


@pytest.mark.slow
def test_cli_check_prints_the_runs_and_exits_2_on_an_unknown_model(db, settings, db_url, digits_model):
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    pin_reference(db, settings, digits_model.id, start)
    config_id = add_config(db, digits_model.id, detector="ks_features", schedule_seconds=3600)
    log(db, settings, records(utcnow() - timedelta(minutes=5), 200, seed=32))
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    result = run_cli("check", "--model", "digits", "--version", "v1", "--json", env=env)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert [r["config_id"] for r in body["runs"]] == [config_id] and body["runs"][0]["status"] == "ok"
    table = run_cli("check", "--model", "digits", "--version", "v1", env=env)
    assert table.returncode == 0 and "no new data since run" in table.stdout
    missing = run_cli("check", "--model", "nope", "--version", "v1", env=env)
    assert missing.returncode == 2 and "nope" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


def test_serve_links_use_the_served_port_and_say_so_when_public_url_is_unset() -> None:
    unset, note = served_public_url(None, 8123)
    assert unset == "http://127.0.0.1:8123" and note is not None and "SHIFTWATCH_PUBLIC_URL is unset" in note
    given, none = served_public_url("https://sw.example.com", 8123)
    assert given == "https://sw.example.com" and none is None
