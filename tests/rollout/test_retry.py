"""Issue 23 (5, 10): a rolled-back or rejected version can be rolled out again (``rollout retry``), the refusal
to start it names that command, and ``rollout list`` shows every rollout, filtered, as a table or the API's JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import select
from typer.testing import CliRunner

from shiftwatch import cli as root_cli
from shiftwatch.collector import registry
from shiftwatch.rollout import controller
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.rollout.tables import AuditLog
from tests.support.rollout import add_version


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The real entry point: exit codes and one-line errors as a person gets them."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | env
    return subprocess.run([sys.executable, "-c", "from shiftwatch.cli import main; main()", *args],
                          capture_output=True, text=True, env=full_env, timeout=120)


def rolled_back(db, settings) -> int:
    """v2 went to shadow and a guardrail rolled it back."""
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    with db.session() as session:
        plan = RolloutPlan(canary_steps=[0.05, 0.5], min_shadow_pairs=50)
        rollout = controller.start_rollout(session, settings.data_dir, "digits", "v2", plan, actor="test")
        controller.transition(session, rollout, "rolled_back", actor="controller", action="auto_rollback",
                              reason="p99 latency 80.0 ms exceeds the budget of 50.0 ms")
        return rollout.id


def test_starting_a_rolled_back_version_names_retry_and_retry_rolls_it_out_again(db, db_url, settings) -> None:
    first = rolled_back(db, settings)
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    refused = run_cli("rollout", "start", "--model", "digits", "--version", "v2", env=env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert f"was rolled back in rollout {first} (p99 latency 80.0 ms" in refused.stderr
    assert f"`shiftwatch rollout retry {first}`" in refused.stderr and "shiftwatch retrain register" in refused.stderr

    retried = CliRunner().invoke(root_cli.app, ["rollout", "retry", str(first), "--steps", "0.25,0.5",
                                                "--reason", "latency fixed on the host", "--json"], env=env)
    assert retried.exit_code == 0, retried.output
    out = json.loads(retried.stdout)
    assert out["id"] != first and (out["state"], out["candidate_version"]) == ("shadow", "v2")
    # The retried rollout's plan, with only what was asked changed.
    assert (out["plan"]["canary_steps"], out["plan"]["min_shadow_pairs"]) == ([0.25, 0.5], 50)
    with db.session() as session:
        assert controller.get_rollout(session, first).state == "rolled_back"  # its record stays as it was
        assert registry.get_version(session, "digits", "v2").state == "shadow"
        retry_row = session.scalar(select(AuditLog).where(AuditLog.rollout_id == out["id"], AuditLog.action == "retry"))
        assert retry_row is not None and retry_row.evidence == {"retry_of": first}
        assert retry_row.reason == f"retry of rollout {first} (rolled_back): latency fixed on the host"

    again = run_cli("rollout", "retry", str(first), env=env)  # the version is already being rolled out again
    assert again.returncode == 2 and f"rollout {out['id']} already rolls out the same version" in again.stderr
    active = run_cli("rollout", "retry", str(out["id"]), env=env)
    assert active.returncode == 2 and "only a rolled-back or rejected rollout can be retried" in active.stderr


def test_retry_over_http_refuses_a_bad_plan_and_changes_nothing(db, settings, api) -> None:
    first = rolled_back(db, settings)
    bad = api.post(f"/v1/rollouts/{first}/retry", json={"plan": {"canary_steps": [0.5, 0.2]}})
    assert bad.status_code == 422 and "plan: canary_steps: must be increasing shares in (0, 1]" in bad.text
    with db.session() as session:
        assert registry.get_version(session, "digits", "v2").state == "rolled_back"
        assert controller.list_active(session) == []
    retried = api.post(f"/v1/rollouts/{first}/retry", json={"reason": "try again"})
    assert retried.status_code == 201, retried.text
    assert retried.json()["state"] == "shadow"


def test_rollout_list_filters_by_model_and_state_as_a_table_or_json(db, db_url, settings) -> None:
    first = rolled_back(db, settings)
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    assert runner.invoke(root_cli.app, ["rollout", "retry", str(first)], env=env).exit_code == 0
    listed = json.loads(runner.invoke(root_cli.app, ["rollout", "list", "--json"], env=env).stdout)
    assert [(r["candidate_version"], r["state"]) for r in listed] == [("v2", "shadow"), ("v2", "rolled_back")]
    second = listed[0]["id"]
    only = json.loads(runner.invoke(root_cli.app, ["rollout", "list", "--state", "rolled_back", "--json"], env=env).stdout)
    assert [r["id"] for r in only] == [first]
    none = runner.invoke(root_cli.app, ["rollout", "list", "--model", "other"], env=env)
    assert none.exit_code == 0 and "no rollouts" in none.output
    table = runner.invoke(root_cli.app, ["rollout", "list", "--model", "digits"], env=env)
    assert table.exit_code == 0
    rows = [line for line in table.output.splitlines() if line.strip("│ ").split(" ")[0] in (str(first), str(second))]
    assert len(rows) == 2 and "rolled back on a guardrail" in table.output
    bad = run_cli("rollout", "list", "--state", "finished", env=env)
    assert bad.returncode == 2 and "'finished' is not a rollout state" in bad.stderr
