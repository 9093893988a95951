"""The demo's last lines work in a new shell: no activated virtualenv, the port that serve really uses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from shiftwatch.demo.story import serve_command, served_url
from shiftwatch.migrate import upgrade
from shiftwatch.settings import Settings
from tests.support.servers import free_port


def test_the_printed_serve_line_runs_in_a_shell_without_the_virtualenv(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'run dir' / 'shiftwatch.db'}",
                        data_dir=tmp_path / "run dir" / "data", port=free_port(), scheduler_enabled=False)  # fmt: skip
    (tmp_path / "run dir").mkdir()
    upgrade(settings.database_url)
    line = serve_command(settings)
    assert f"--port {settings.port}" in line and served_url(settings) == f"http://127.0.0.1:{settings.port}"
    # A new login shell: no VIRTUAL_ENV, no .venv/bin on PATH, no SHIFTWATCH_* of this session.
    bare = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)), "LANG": "C.UTF-8"}
    assert subprocess.run(["bash", "-c", "command -v shiftwatch"], env=bare, capture_output=True).returncode != 0
    server = subprocess.Popen(["bash", "-c", line], env=bare, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(served_url(settings) + "/health", timeout=2) as answer:
                    health = json.loads(answer.read())
                break
            except OSError:
                time.sleep(0.3)
        assert health is not None and health["status"] == "ok", server.stdout.read().decode() if server.poll() else ""
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # its own session: the shell and the server it started
        server.wait(timeout=30)
