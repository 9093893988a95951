"""``shiftwatch retrain`` bad inputs: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from shiftwatch.errors import ShiftwatchError
from shiftwatch.retrain.cli import parse_since


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")}
    env.update({"SHIFTWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SHIFTWATCH_DATA_DIR": str(tmp_path / "data")})
    return subprocess.run(
        [sys.executable, "-c", "from shiftwatch.cli import main; main()", "retrain", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def invoke(tmp_path: Path, *args: str):
    """In-process run of ``shiftwatch retrain ...``; returns the ShiftwatchError it raised (main() prints it)."""
    from typer.testing import CliRunner

    from shiftwatch.cli import app

    env = {"SHIFTWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SHIFTWATCH_DATA_DIR": str(tmp_path / "data")}
    return CliRunner().invoke(app, ["retrain", *args], env=env).exception


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "digits", "--compress", "ptq,sparsify"), "unknown step sparsify"),
        ((), "--model: is required"),
        (("--model", "digits", "--since", "last tuesday"), "--since"),
        (("--model", "nope"), "model 'nope' is not registered"),
        (("--model", "digits", "--budget", "latency=16"), "'latency=16' is not key=value"),
        (("--model", "digits", "--budget", "size_mb=4,provider=tpu"), "provider 'tpu' is not one of"),
    ],
)
def test_bad_input_raises_a_clear_error(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    error = invoke(tmp_path, *args)
    assert isinstance(error, ShiftwatchError) and message in error.message


def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--model", "digits", "--compress", "ptq,sparsify")  # refused before torch loads
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "error: compress: unknown step sparsify; known: distill, prune, qat, ptq (or none)"


def test_a_model_without_retrainable_production_weights_is_refused(tmp_path: Path) -> None:
    from shiftwatch.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO models (id, name, class_names, description, created_at) "
            "VALUES (1, 'digits', '[\"0\",\"1\"]', '', '2026-11-24 00:00:00+00:00')"
        ))
        connection.execute(text(
            "INSERT INTO model_versions (model_id, version, state, embedding_dim, input_spec, report, created_at) "
            "VALUES (1, 'v1', 'production', 64, '{}', '{}', '2026-11-24 00:00:00+00:00')"
        ))  # fmt: skip
    error = invoke(tmp_path, "--model", "digits")
    assert isinstance(error, ShiftwatchError) and "no torch weights" in error.message
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM training_runs")).scalar() == 0
    assert "training_runs" in inspect(engine).get_table_names()


def test_since_accepts_iso_times_and_relative_ages() -> None:
    from datetime import datetime

    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2026, 11, 17, 12, tzinfo=UTC)
    assert parse_since("2026-11-20") == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_since(None) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("register", "--model", "m", "--classes", "a,b", "--input-spec", "{}"), "give exactly one"),
        (("register", "--model", "m", "--classes", "a,b", "--input-spec", "{}", "--factory", "x:y"), "--weights: is required"),
        (("register", "--model", "m", "--classes", "a,b", "--input-spec", "[3, 48]", "--onnx", "m.onnx"), "JSON object"),
        (("register", "--model", "m", "--classes", "a,b", "--input-spec", '{"shape": [5, 8, 8]}', "--onnx", "m.onnx"),
         "1 or 3 channels"),
        (("register", "--model", "m", "--classes", "a,b", "--input-spec", '{"shape": [3, 8, 8]}', "--onnx", "missing.onnx"),
         "not a readable ONNX model"),
    ],
)
def test_bring_your_own_model_bad_input_is_a_clear_error(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    error = invoke(tmp_path, *args)
    assert isinstance(error, ShiftwatchError) and message in error.message, error


def test_bring_your_own_model_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "register", "--model", "m", "--classes", "a,b", "--input-spec",
                     '{"shape": [3, 8, 8], "std": [0, 1, 1]}', "--onnx", str(tmp_path / "m.onnx"))  # fmt: skip
    assert result.returncode == 2 and "input_spec.std" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bring_your_own_model_registers_from_the_command_line(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import json

    from typer.testing import CliRunner

    from shiftwatch.cli import app
    from tests.support import own_model as support

    weights = tmp_path / "w.pt"
    torch.save(support.build().state_dict(), weights)
    env = {"SHIFTWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SHIFTWATCH_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(app, ["retrain", "register", "--model", "shapes", "--classes", ",".join(support.CLASS_NAMES),
                                      "--factory", support.FACTORY, "--weights", str(weights),
                                      "--input-spec", json.dumps(support.INPUT_SPEC)], env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["state"], out["embedding_dim"], out["input_spec"]["std"]) == ("production", 32, [0.25, 0.25, 0.25])
