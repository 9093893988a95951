"""Real processes for the fault tests: a private PostgreSQL cluster we may kill, and ``shiftwatch serve``.

The shared cluster on 5432 is never stopped: anything that restarts or kills a database
gets its own cluster (``pg_createcluster`` on a free port, trust auth on loopback, fsync off
because durability across a power cut is not what these tests are about), removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from conftest import free_port


def _run(*args: str, timeout: float = 60) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")


class FaultCluster:
    """A throwaway PostgreSQL 15 cluster that tests may stop, restart and kill."""

    version = "15"

    def __init__(self) -> None:
        self.name = f"swfault{os.getpid()}{uuid.uuid4().hex[:4]}"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def available() -> str | None:
        missing = [tool for tool in ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster") if shutil.which(tool) is None]
        return f"missing {', '.join(missing)}" if missing else None

    def create(self) -> "FaultCluster":
        _run(
            "pg_createcluster", self.version, self.name, "-p", str(self.port),
            "-o", "fsync=off", "-o", "shared_buffers=32MB", "-o", "max_connections=60",
            "--", "--auth=trust",
        )  # fmt: skip
        self.start()
        return self

    def start(self) -> None:
        _run("pg_ctlcluster", self.version, self.name, "start")
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        _run("pg_ctlcluster", self.version, self.name, "stop", "-m", mode)

    def restart(self) -> None:
        _run("pg_ctlcluster", self.version, self.name, "restart", "-m", "fast")
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                engine = create_engine(self.url)
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                engine.dispose()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def drop(self) -> None:
        subprocess.run(["pg_ctlcluster", self.version, self.name, "stop", "-m", "immediate"], capture_output=True)
        subprocess.run(["pg_dropcluster", self.version, self.name], capture_output=True)


def fault_cluster_or_skip() -> FaultCluster:
    problem = FaultCluster.available()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"fault tests need pg_createcluster in CI: {problem}")
        pytest.skip(f"no private PostgreSQL cluster possible: {problem}")
    return FaultCluster().create()


class ServeProcess:
    """``shiftwatch serve`` as a real child process on a loopback port."""

    def __init__(self, database_url: str, data_dir: Path, port: int | None = None, **settings: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SHIFTWATCH_DATABASE_URL": database_url,
            "SHIFTWATCH_DATA_DIR": str(data_dir),
            "SHIFTWATCH_SCHEDULER_ENABLED": "false",
            **{f"SHIFTWATCH_{k.upper()}": v for k, v in settings.items()},
        }
        self.process: subprocess.Popen | None = None
        self.log = data_dir / f"serve-{self.port}.log"

    def start(self, timeout: float = 60) -> "ServeProcess":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from shiftwatch.cli import main; main()", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"shiftwatch serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"shiftwatch serve did not answer: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, whatever was in flight is cut off."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
