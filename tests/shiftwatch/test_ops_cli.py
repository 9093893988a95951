"""``shiftwatch models``, ``alerts`` and ``detectors``: tables by default, ``--json`` in the API's shape,
nothing cut at 80 columns, bad ids one line and exit code 2; on both backends."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from shiftwatch import cli as root_cli
from shiftwatch.collector import registry
from tests.support.console import open_drift_alert

LONG = "digits-" + "x" * 110  # a model name wider than an 80-column terminal on its own


def cli_app():
    return root_cli.app


@pytest.fixture
def env(db_url, settings) -> dict[str, str]:
    return {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir), "COLUMNS": "80"}


def invoke(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli_app(), list(args), env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def run_main(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The real entry point, so the error-to-exit-code mapping is what a person gets."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | env
    return subprocess.run([sys.executable, "-c", "from shiftwatch.cli import main; main()", *args],
                          capture_output=True, text=True, env=full_env, timeout=120)  # fmt: skip


@pytest.fixture
def opened_alert(db, settings) -> int:
    """A real alert: a reference window, a shifted current window and one MMD run over them."""
    from shiftwatch.detectors import alerts

    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        version_id = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production").id
    open_drift_alert(db, settings, version_id)
    with db.session() as session:
        (alert,) = alerts.list_alerts(session)
        return alert.id


def test_models_list_and_show_keep_long_names_whole_and_json_is_the_api_shape(db, env) -> None:
    with db.session() as session:
        registry.register_model(session, LONG, ["cat", "dog"], description="pets")
        registry.register_version(session, LONG, "v1", embedding_dim=8, state="production")
        registry.register_version(session, LONG, "v2", embedding_dim=8)
    table = invoke(env, "models", "list")
    assert LONG in table and "v1 (production), v2 (candidate)" in table
    assert max(map(len, table.splitlines())) > 80  # as wide as the content, not the terminal
    listed = json.loads(invoke(env, "models", "list", "--json"))
    assert [(m["name"], m["class_names"], [v["state"] for v in m["versions"]]) for m in listed] == [
        (LONG, ["cat", "dog"], ["production", "candidate"])
    ]
    shown = json.loads(invoke(env, "models", "show", "--model", LONG, "--json"))
    assert shown["description"] == "pets" and [v["version"] for v in shown["versions"]] == ["v1", "v2"]
    human = invoke(env, "models", "show", "--model", LONG)
    assert '["cat", "dog"]' in human and "candidate" in human


def test_an_unknown_model_or_alert_is_one_line_and_exit_2(db, env) -> None:
    missing = run_main(env, "models", "show", "--model", "nope")
    assert missing.returncode == 2 and missing.stderr.strip() == "error: model 'nope' is not registered"
    no_alert = run_main(env, "alerts", "ack", "999")
    assert no_alert.returncode == 2 and no_alert.stderr.strip() == "error: alert 999 does not exist"


def test_alerts_list_show_ack_resolve(db, env, opened_alert: int) -> None:
    listed = json.loads(invoke(env, "alerts", "list", "--json", "--model", "digits"))
    assert [(a["id"], a["state"], a["detector"]) for a in listed] == [(opened_alert, "open", "mmd")]
    table = invoke(env, "alerts", "list", "--state", "open")
    assert listed[0]["title"] in table
    harm, source = listed[0]["estimated_harm"], listed[0]["harm_source"]
    wide = invoke({**env, "COLUMNS": "400"}, "alerts", "list", "--state", "open")  # the harm cell on one line
    unit = ("mean-confidence points (a confidence drop, not accuracy)" if source == "confidence_drop"
            else "accuracy points")  # never confidence called accuracy
    assert ("unknown" if harm is None else f"{unit} lost" if harm >= 0 else f"{unit} gained") in wide
    assert invoke(env, "alerts", "list", "--state", "resolved") == "no alerts\n"
    shown = invoke(env, "alerts", "show", str(opened_alert))
    assert re.search(rf"^alert +{opened_alert}$", shown, re.M) and "mmd (config" in shown and "evidence" in shown
    assert re.search(r"^harm +mean confidence", shown, re.M)  # named for what it measured (issue 24)

    acked = json.loads(invoke(env, "alerts", "ack", str(opened_alert), "--json"))
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"].startswith("cli:")
    resolved = invoke(env, "alerts", "resolve", str(opened_alert))
    assert resolved.startswith(f"alert {opened_alert} is resolved")
    assert json.loads(invoke(env, "alerts", "show", str(opened_alert), "--json"))["resolved_by"].startswith("cli:")
    refused = run_main(env, "alerts", "ack", str(opened_alert))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


def test_alerts_list_refuses_a_version_without_its_model(db, env) -> None:
    result = run_main(env, "alerts", "list", "--version", "v1")
    assert result.returncode == 2 and result.stderr.strip() == "error: --version: give --model too"


def test_detectors_list_and_runs(db, env, opened_alert: int) -> None:
    (config,) = json.loads(invoke(env, "detectors", "list", "--json"))
    assert (config["detector"], config["window_last_n"], config["enabled"]) == ("mmd", 300, True)
    assert "digits:v1" in invoke(env, "detectors", "list", "--model", "digits", "--version", "v1")
    (run,) = json.loads(invoke(env, "detectors", "runs", str(config["id"]), "--json"))
    assert run["decision"] is True and run["n_current"] == 300
    table = invoke(env, "detectors", "runs", str(config["id"]))
    assert f"runs of detector {config['id']}" in table and "yes" in table
    half = run_main(env, "detectors", "list", "--model", "digits")
    assert half.returncode == 2 and "--version" in half.stderr
