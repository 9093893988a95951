"""``shiftwatch rollout``: start, refused approval (exit 2, one line), forced approval with a reason, status."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rollout_support import add_version

from shiftwatch.rollout import controller


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | env | {"COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", "from shiftwatch.cli import main; main()", *args],
                          capture_output=True, text=True, env=full_env, timeout=120)


# One backend: the CLI is a thin shell over the controller, which runs on both backends elsewhere;
# each subprocess costs seconds of import time on a small machine.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_starts_refuses_then_force_approves_with_the_reason_audited(db, db_url, settings):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    started = run_cli("rollout", "start", "--model", "digits", "--version", "v2", "--steps", "1.0", env=env)
    assert started.returncode == 0, started.stderr
    assert "shadow" in started.stdout
    with db.session() as session:
        (rollout,) = controller.list_active(session)
        controller.transition(session, rollout, "canary", actor="controller", action="start_canary", reason="test")
        rollout_id = rollout.id
    refused = run_cli("rollout", "approve", str(rollout_id), env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "not enough evidence" in refused.stderr
    forced = run_cli("rollout", "approve", str(rollout_id), "--force", "--reason", "urgent fix", env=env)
    assert forced.returncode == 0, forced.stderr
    shown = run_cli("rollout", "status", str(rollout_id), "--no-report", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "production" in shown.stdout and "urgent fix" in shown.stdout and "yes" in shown.stdout
