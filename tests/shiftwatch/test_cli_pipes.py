"""A reader that stops early (``shiftwatch rollout start ... | head -1``) never undoes what a command did.

The commands run as a person runs them (the real entry point in a subprocess) with stdout a real
pipe whose reading end is already closed, so their very first write fails with EPIPE.
"""

from __future__ import annotations

import os
import subprocess
import sys

from shiftwatch.collector import registry
from shiftwatch.rollout import controller
from shiftwatch.tokens import list_tokens
from tests.support.rollout import add_version, build_classifier


def run_into_closed_pipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the first write to stdout is a broken pipe
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | env
    try:
        return subprocess.run([sys.executable, "-c", "from shiftwatch.cli import main; main()", *args],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, env=full_env, timeout=120)
    finally:
        os.close(write_end)


def assert_quiet(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_rollout_start_and_reject_into_a_closed_pipe_still_commit(db, db_url, settings) -> None:
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    assert_quiet(run_into_closed_pipe("rollout", "start", "--model", "digits", "--version", "v2", env=env))
    with db.session() as session:
        (rollout,) = controller.list_active(session)
        assert rollout.state == "shadow"
        rollout_id = rollout.id
    assert_quiet(run_into_closed_pipe("rollout", "reject", str(rollout_id), "--reason", "wrong split", "--json",
                                      env=env))
    with db.session() as session:
        assert controller.get_rollout(session, rollout_id).state == "rejected"


def test_register_and_token_create_into_a_closed_pipe_still_commit(db, db_url, settings) -> None:
    onnx_file = settings.data_dir / "upload" / "tiny.onnx"
    build_classifier(onnx_file)
    env = {"SHIFTWATCH_DATABASE_URL": db_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    assert_quiet(run_into_closed_pipe(
        "retrain", "register", "--model", "tiny", "--classes", ",".join(str(i) for i in range(10)),
        "--onnx", str(onnx_file), "--input-spec", '{"shape": [1, 32, 32], "scale": "0..1"}', env=env,
    ))  # fmt: skip
    with db.session() as session:
        assert [v.version for v in registry.list_versions(session, "tiny")] == ["v1"]
    assert_quiet(run_into_closed_pipe("token", "create", "--name", "ci", "--scope", "read", env=env))
    assert [t.name for t in list_tokens(db)] == ["ci"]
