"""Issue 23, item 2: the default detector over streamed traffic, and a detector that fails says so in one line.

A user logs predictions with stream ids (the gateway's ``X-Stream-ID``), pins a stretch of that
traffic as the reference (docs/own-model-monitoring.md, step 5's second option) and adds ``auto``.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import httpx
import numpy as np
import pytest

from shiftwatch.db import utcnow
from shiftwatch.detectors import runs
from shiftwatch.detectors.configs import ConfigSpec, fit_key
from shiftwatch.detectors.tables import DetectorConfig, DetectorState, DriftRun
from shiftwatch_client.client import Client
from tests.detectors.test_check import run_cli

DIM = 16
CLASSES = ["a", "b", "c", "d"]


@pytest.fixture
def client(live_server, tmp_path):
    with Client(live_server.url, spill_dir=tmp_path / "spill", batch_size=100) as sdk:
        yield sdk


def log_streams(client: Client, start, n: int, *, shift: float, seed: int) -> None:
    """``n`` predictions from three cameras, a second apart; embeddings N(shift, 1)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        probs = rng.dirichlet(np.ones(len(CLASSES)))
        client.log("parts", "v1", int(probs.argmax()), float(probs.max()), embedding=rng.normal(shift, 1.0, DIM),
                   probabilities=probs, stream_id=f"cam-{i % 3}", ts=start + timedelta(seconds=i))  # fmt: skip
    assert client.flush(timeout=30)


def watch_streams_with_auto(client: Client, *, shift: float) -> dict:
    """Register, log 300 reference predictions, pin them by time range, add ``auto``, log 200 more."""
    client.register_model("parts", CLASSES)
    client.register_version("parts", "v1", embedding_dim=DIM)
    client.bootstrap_version("parts", "v1", reason="served by the user's own stack")
    start = (utcnow() - timedelta(hours=1)).replace(microsecond=0)
    log_streams(client, start, 300, shift=0.0, seed=1)
    pinned = client.set_reference("parts", "v1", start=start, end=start + timedelta(seconds=301))
    assert pinned["n"] == 300
    config = client.add_detector("parts", "v1", "auto", window_last_n=200, schedule_seconds=60, confirm_runs=1,
                                 params={"n_permutations": 200})  # fmt: skip
    log_streams(client, utcnow() - timedelta(minutes=5), 200, shift=shift, seed=2)
    return config


def test_auto_checks_a_time_range_reference_of_streamed_traffic_and_finds_the_shift(client, live_server) -> None:
    config = watch_streams_with_auto(client, shift=0.8)
    answer = httpx.post(f"{live_server.url}/v1/models/parts/versions/v1/check", json={}, timeout=120)
    assert answer.status_code == 200, answer.text
    (run,) = answer.json()["runs"]
    assert (run["config_id"], run["status"], run["note"]) == (config["id"], "ok", None)
    assert run["decision"] is True
    assert len(answer.json()["opened"]) == 1


def test_the_scheduler_runs_auto_on_streamed_traffic_and_stays_quiet_without_a_shift(client, db, settings) -> None:
    config = watch_streams_with_auto(client, shift=0.0)
    report = runs.run_due_detectors(db, settings, utcnow())
    assert report.failed_versions == () and report.runs == 1 and report.flagged == 0
    with db.session() as session:
        run = session.query(DriftRun).filter_by(config_id=config["id"]).one()
        assert (run.status, run.note, run.decision) == ("ok", None, False)


def corrupt_the_fitted_state(db, config_id: int) -> None:
    """A stored state the detector cannot use (as one written by another release might be): no stream context."""
    from shiftwatch.detectors import references

    with db.session() as session:
        row = session.get(DetectorConfig, config_id)
        fingerprint = references.load(session, row.model_version_id).fingerprint
        buffer = io.BytesIO()
        np.savez(buffer, reference_=np.zeros((300, DIM), np.float32))
        session.add(DetectorState(config_id=config_id, fit_key=fit_key(ConfigSpec.of(row), fingerprint),
                                  state=buffer.getvalue(), fitted_at=utcnow()))  # fmt: skip


def test_a_failing_detector_is_recorded_on_its_run_in_one_line_by_check_and_scheduler(client, db, settings) -> None:
    config = watch_streams_with_auto(client, shift=0.0)
    corrupt_the_fitted_state(db, config["id"])
    report = runs.run_due_detectors(db, settings, utcnow())
    assert report.failed_versions == () and report.runs == 1
    with db.session() as session:
        run = session.query(DriftRun).filter_by(config_id=config["id"]).one()
        assert run.status == "failed" and run.decision is False
        assert run.note.startswith("failed: AttributeError: ") and "\n" not in run.note and "stream_ids_" in run.note


@pytest.mark.slow
def test_cli_check_runs_auto_on_streamed_traffic_and_reports_a_failure_in_one_line(client, db, settings, db_url):
    config = watch_streams_with_auto(client, shift=0.8)
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    checked = run_cli("check", "--model", "parts", "--version", "v1", "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    (run,) = json.loads(checked.stdout)["runs"]
    assert (run["config_id"], run["status"], run["decision"]) == (config["id"], "ok", True)

    with db.session() as session:
        session.query(DetectorState).delete()
    corrupt_the_fitted_state(db, config["id"])
    log_streams(client, utcnow() - timedelta(minutes=1), 40, shift=0.8, seed=3)  # new data: the check runs again
    failed = run_cli("check", "--model", "parts", "--version", "v1", env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr and "failed" in failed.stdout
    (line,) = failed.stderr.strip().splitlines()
    assert line.startswith(f"detector config {config['id']} (auto) failed: ")
