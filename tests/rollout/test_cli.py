"""``shiftwatch rollout``: start, refused approval (exit 2, one line), forced approval with a reason, status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from shiftwatch import cli as root_cli
from shiftwatch.db import utcnow
from shiftwatch.rollout import controller
from shiftwatch_client.records import PredictionRecord
from tests.support.collector import store_predictions
from tests.support.rollout import add_version


def cli_app():
    return root_cli.app


def run_subprocess(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | env
    return subprocess.run([sys.executable, "-c", "from shiftwatch.cli import main; main()", *args],
                          capture_output=True, text=True, env=full_env, timeout=120)


# One backend: the CLI is a thin shell over the controller, which runs on both backends elsewhere.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_starts_refuses_then_force_approves_with_the_reason_audited(db, db_url, settings):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    runner = CliRunner()
    started = runner.invoke(cli_app(), ["rollout", "start", "--model", "digits", "--version", "v2", "--steps", "1.0",
                                          "--plan", '{"min_shadow_pairs": 7}'],
                            env=env)
    assert started.exit_code == 0, started.output
    assert "shadow" in started.output
    with db.session() as session:
        (rollout,) = controller.list_active(session)
        assert (rollout.plan["min_shadow_pairs"], rollout.plan["canary_steps"]) == (7, [1.0])
        controller.transition(session, rollout, "canary", actor="controller", action="start_canary", reason="test")
        rollout_id = rollout.id
    # The real entry point, so the error-to-exit-code mapping is what a person gets.
    refused = run_subprocess("rollout", "approve", str(rollout_id), env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "not enough evidence" in refused.stderr
    forced = runner.invoke(cli_app(), ["rollout", "approve", str(rollout_id), "--force", "--reason", "urgent fix",
                                         "--json"], env=env)
    assert forced.exit_code == 0, forced.output
    approved = json.loads(forced.stdout)  # --json: the rollout as the API returns it, in the state it now holds
    assert approved["id"] == rollout_id and approved["state"] == "production"
    assert approved["audit"][-1]["reason"] == "urgent fix"
    shown = runner.invoke(cli_app(), ["rollout", "status", str(rollout_id), "--no-report"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "production" in shown.output and "urgent fix" in shown.output and "yes" in shown.output


def test_status_writes_no_report_unless_asked_and_json_is_the_api_shape(db, db_url, settings):
    from shiftwatch.rollout.schemas import RolloutPlan

    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    with db.session() as session:
        rollout = controller.start_rollout(session, settings.data_dir, "digits", "v2", RolloutPlan(), actor="test")
        rollout.stage_started_at = utcnow() - timedelta(hours=1)
        rollout_id = rollout.id
    rng = np.random.default_rng(0)  # enough outputs on both routes that a report could be written
    records = []
    for version, route in (("v1", "production"), ("v2", "shadow")):
        for i in range(30):
            probs = rng.dirichlet(np.ones(10)).astype(np.float32)
            records.append(PredictionRecord(
                model="digits", version=version, predicted_class=int(probs.argmax()), confidence=float(probs.max()),
                embedding=rng.normal(size=16).astype(np.float32), probabilities=probs, route=route,
                ts=utcnow() - timedelta(minutes=30 - i),
            ))  # fmt: skip
    store_predictions(db, settings, records)
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir), "COLUMNS": "80"}
    runner = CliRunner()
    shown = runner.invoke(cli_app(), ["rollout", "status", str(rollout_id)], env=env)
    assert shown.exit_code == 0, shown.output
    assert "shadow" in shown.output and "Evidently" not in shown.output
    assert list(settings.data_dir.rglob("rollout-*.html")) == []
    as_json = json.loads(runner.invoke(cli_app(), ["rollout", "status", str(rollout_id), "--json"], env=env).output)
    assert (as_json["id"], as_json["state"], as_json["candidate_version"], as_json["report_file"]) == (
        rollout_id, "shadow", "v2", None)
    listed = json.loads(runner.invoke(cli_app(), ["rollout", "status", "--json"], env=env).output)
    assert [(r["id"], r["baseline_version"]) for r in listed] == [(rollout_id, "v1")]
    assert list(settings.data_dir.rglob("rollout-*.html")) == []
    asked = runner.invoke(cli_app(), ["rollout", "status", str(rollout_id), "--report"], env=env)
    assert asked.exit_code == 0, asked.output
    (written,) = settings.data_dir.rglob("rollout-*.html")
    assert "Evidently report" in asked.output and written.name in asked.output.replace("\n", "")
    reason = "trained on the wrong split; " * 5  # 140 characters: kept whole, not cut to a terminal
    assert runner.invoke(cli_app(), ["rollout", "reject", str(rollout_id), "--reason", reason], env=env).exit_code == 0
    rejected = runner.invoke(cli_app(), ["rollout", "status", str(rollout_id)], env=env)
    assert reason.strip() in rejected.output and "candidate report:" in rejected.output
    assert "size_bytes" in rejected.output
