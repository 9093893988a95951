"""The root CLI: schema upgrade works, bad configuration is one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from shiftwatch.cli import main; main()", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120,
    )  # fmt: skip


def test_db_upgrade_creates_the_schema_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = run_cli("db", "upgrade", env={"SHIFTWATCH_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert {"models", "model_versions", "predictions"} <= set(inspect(create_engine(url)).get_table_names())


def test_bad_database_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("db", "upgrade", env={"SHIFTWATCH_DATABASE_URL": "mysql://nope"})
    assert result.returncode == 2
    assert "SHIFTWATCH_DATABASE_URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_value_type_is_exit_2(tmp_path: Path) -> None:
    result = run_cli("db", "upgrade", env={"SHIFTWATCH_PORT": "eighty"})
    assert result.returncode == 2
    assert "SHIFTWATCH_PORT" in result.stderr


def test_missing_config_file_is_exit_2(tmp_path: Path) -> None:
    result = run_cli("db", "upgrade", env={"SHIFTWATCH_CONFIG": str(tmp_path / "missing.toml")})
    assert result.returncode == 2
    assert "missing.toml" in result.stderr


def test_toml_config_file_is_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-toml.db'}"
    config = tmp_path / "shiftwatch.toml"
    config.write_text(f'database_url = "{url}"\n')
    result = run_cli("db", "upgrade", env={"SHIFTWATCH_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-toml.db").exists()


def test_unknown_key_in_config_file_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "shiftwatch.toml"
    config.write_text('databse_url = "sqlite:///x.db"\n')
    result = run_cli("db", "upgrade", env={"SHIFTWATCH_CONFIG": str(config)})
    assert result.returncode == 2
    assert "databse_url" in result.stderr.lower()


@pytest.mark.parametrize("value", ["https://a.example/hook, https://b.example/hook", '["https://a.example/hook", "https://b.example/hook"]'])
def test_alert_webhooks_from_the_environment_take_commas_or_a_json_list(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from shiftwatch.settings import Settings

    monkeypatch.setenv("SHIFTWATCH_ALERT_WEBHOOKS", value)
    assert Settings().alert_webhooks == ["https://a.example/hook", "https://b.example/hook"]
