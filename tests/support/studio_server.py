"""A throwaway local Label Studio server for the tests: its own venv, a temporary data dir, a known token.

Test tooling, so it sits outside the installed package (``shiftwatch demo`` talks to a Label
Studio only when one is configured; it never starts one). Label Studio's pins clash with ours,
so it lives in its own virtual environment (``tests/support/studio_venv.sh`` builds
``.labelstudio-venv/``). Since 1.17 legacy tokens are off per organization by default;
``--enable-legacy-api-token`` (1.23) turns them on for the organization created at first start,
so the ``--user-token`` we pass works at once. ``SSRF_PROTECTION_ENABLED=false`` lets its
webhooks reach shiftwatch on loopback.

It listens on 127.0.0.1 only (``--host`` only names the URL it prints; ``--internal-host`` is the
address it binds, 0.0.0.0 by default) and makes no calls out (``QUIET_ENV``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port

PINNED_VERSION = "1.23.2"
# First start migrates a fresh SQLite database: 45-160 s measured on a shared, overloaded 2-core machine.
START_TIMEOUT_S = 300.0
# Label Studio 1.23's calls home, all off: error reports to Sentry (server and page; the DSNs default to
# HumanSignal's, an empty one disables them), usage analytics (server events and the page's
# tracking script), the PyPI version check, and the feature-flag service (offline: flags from the package).
QUIET_ENV = {
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
    "FEATURE_FLAGS_OFFLINE": "true",
}


def label_studio_bin(venv: Path) -> Path | None:
    """The ``label-studio`` launcher in ``venv``, or None when the venv is not built."""
    path = Path(venv) / "bin" / "label-studio"
    return path if path.is_file() and os.access(path, os.X_OK) else None


class LabelStudioServer:
    """``label-studio start`` on 127.0.0.1 in a temporary data dir; ``stop()`` kills it and removes the dir."""

    def __init__(self, venv: Path, *, port: int | None = None, username: str = "shiftwatch@example.com") -> None:
        self.venv = Path(venv)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = username
        self.password = secrets.token_urlsafe(12)
        self.token = secrets.token_hex(20)
        self.data_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> LabelStudioServer:
        launcher = label_studio_bin(self.venv)
        if launcher is None:
            raise RuntimeError(f"no Label Studio in {self.venv}: run tests/support/studio_venv.sh {self.venv}")
        self.data_dir = Path(tempfile.mkdtemp(prefix="shiftwatch-ls-"))
        self.log_path = self.data_dir / "server.log"
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "SSRF_PROTECTION_ENABLED": "false",
            **QUIET_ENV,
        }
        command = [
            str(launcher), "start", "--no-browser", "--host", "127.0.0.1", "--internal-host", "127.0.0.1",
            "--port", str(self.port),
            "--username", self.username, "--password", self.password, "--user-token", self.token,
            "--enable-legacy-api-token",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=self.data_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        headers = {"Authorization": f"Token {self.token}"}
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {self.process.returncode}: {self.log_tail()}")
            try:
                # /health answers before the user exists; whoami with our token proves the API is usable.
                if httpx.get(f"{self.url}/api/current-user/whoami", headers=headers, timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1.0)
        raise RuntimeError(f"Label Studio did not answer within {timeout_s:.0f} s: {self.log_tail()}")

    def user_id(self) -> int:
        """The id of the test user (who logs in, and whose token the tests use)."""
        headers = {"Authorization": f"Token {self.token}"}
        return int(httpx.get(f"{self.url}/api/current-user/whoami", headers=headers, timeout=10).json()["id"])

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the launcher and its workers
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
