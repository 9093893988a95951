"""Issue 23, item 2: a detector is switched off and on again from the SDK and the CLI, without raw HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shiftwatch.db import utcnow
from shiftwatch.detectors import runs
from shiftwatch_client.client import ApiError, Client
from tests.detectors.test_check import run_cli
from tests.support.drift_scenario import add_config, log, pin_reference, records


@pytest.fixture
def client(live_server, tmp_path):
    with Client(live_server.url, spill_dir=tmp_path / "spill") as sdk:
        yield sdk


def test_the_sdk_disables_a_detector_so_nothing_runs_it_and_enables_it_again(client, db, settings, digits_model):
    pin_reference(db, settings, digits_model.id, (utcnow() - timedelta(hours=2)).replace(microsecond=0))
    config = client.add_detector("digits", "v1", "ks_features", window_last_n=200, schedule_seconds=60)
    log(db, settings, records(utcnow() - timedelta(minutes=5), 200, seed=5))

    off = client.disable_detector(config["id"])
    assert (off["id"], off["enabled"]) == (config["id"], False)
    assert [c["enabled"] for c in client.list_detectors("digits", "v1")] == [False]
    assert runs.run_due_detectors(db, settings, utcnow()).runs == 0
    with pytest.raises(ApiError, match="no enabled detector config") as refused:
        client.check("digits", "v1")
    assert refused.value.status == 409

    assert client.enable_detector(config["id"])["enabled"] is True
    checked = client.check("digits", "v1")
    assert [(r["config_id"], r["status"]) for r in checked["runs"]] == [(config["id"], "ok")]
    with pytest.raises(ApiError, match="does not exist") as missing:
        client.disable_detector(config["id"] + 100)
    assert missing.value.status == 404


@pytest.mark.slow
def test_cli_disables_by_model_and_name_enables_by_id_and_refuses_what_it_cannot_find(db, settings, db_url, digits_model):
    config_id = add_config(db, digits_model.id, detector="ks_features")
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}

    off = run_cli("detectors", "disable", "--model", "digits", "--version", "v1", "--name", "ks_features", env=env)
    assert off.returncode == 0, off.stderr
    assert off.stdout.strip() == f"detector config {config_id} disabled: ks_features (ks_features) on digits:v1"
    listed = run_cli("detectors", "list", "--json", env=env)
    assert '"enabled": false' in listed.stdout
    on = run_cli("detectors", "enable", str(config_id), env=env)
    assert on.returncode == 0 and f"detector config {config_id} enabled" in on.stdout
    assert '"enabled": true' in run_cli("detectors", "list", "--json", env=env).stdout

    for args, says in [
        ((), "give a detector config id"),
        ((str(config_id), "--model", "digits"), "not both"),
        (("--model", "digits", "--name", "x"), "--version"),
        (("999",), "detector config 999 does not exist"),
        (("--model", "digits", "--version", "v1", "--name", "nope"), "digits:v1 has no detector config named 'nope' (it has: ks_features)"),
    ]:
        refused = run_cli("detectors", "disable", *args, env=env)
        assert refused.returncode == 2 and says in refused.stderr, (args, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1
