"""Issue 23 (10): every link the CLI prints starts at SHIFTWATCH_PUBLIC_URL, or at loopback on SHIFTWATCH_PORT
when that is unset; never at port 8000 while the server listens elsewhere."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shiftwatch import cli as root_cli
from shiftwatch.collector import registry
from shiftwatch.detectors.links import served_public_url
from shiftwatch.rollout import controller
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.settings import load_settings
from tests.support.console import open_drift_alert
from tests.support.rollout import add_version

SERVED_ELSEWHERE = [
    ({"SHIFTWATCH_PORT": "9123"}, "http://127.0.0.1:9123"),
    ({"SHIFTWATCH_PORT": "9123", "SHIFTWATCH_PUBLIC_URL": "https://sw.example.com/"}, "https://sw.example.com"),
]


def test_settings_links_follow_the_port_until_a_public_url_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIFTWATCH_PORT", "9123")
    unset = load_settings()
    assert unset.public_url == "http://127.0.0.1:9123"
    served, note = served_public_url(None, 9200)  # `serve --port 9200` still wins, and says so
    assert served == "http://127.0.0.1:9200" and note is not None
    monkeypatch.setenv("SHIFTWATCH_PUBLIC_URL", "https://sw.example.com")
    assert load_settings().public_url == "https://sw.example.com"


@pytest.mark.parametrize(("extra", "base"), SERVED_ELSEWHERE)
def test_alert_links_printed_by_the_cli_follow_port_and_public_url(db, db_url, settings, extra, base) -> None:
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        version_id = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production").id
    open_drift_alert(db, settings, version_id)
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir), **extra}
    runner = CliRunner()
    (alert,) = json.loads(runner.invoke(root_cli.app, ["alerts", "list", "--json"], env=env).stdout)
    assert (alert["url"], alert["console_url"]) == (f"{base}/v1/alerts/{alert['id']}",
                                                    f"{base}/console/alerts/{alert['id']}")
    shown = runner.invoke(root_cli.app, ["alerts", "show", str(alert["id"])], env=env)
    assert shown.exit_code == 0 and f"{base}/v1/alerts/{alert['id']}" in shown.output


@pytest.mark.parametrize(("extra", "base"), SERVED_ELSEWHERE)
def test_rollout_status_links_its_console_page(db, db_url, settings, extra, base) -> None:
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    with db.session() as session:
        rollout_id = controller.start_rollout(session, settings.data_dir, "digits", "v2", RolloutPlan(), actor="t").id
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir), **extra}
    shown = CliRunner().invoke(root_cli.app, ["rollout", "status", str(rollout_id)], env=env)
    assert shown.exit_code == 0 and f"console: {base}/console/rollouts/{rollout_id}" in shown.output, shown.output
