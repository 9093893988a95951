"""A fleet of watched model versions and real ``shiftwatch detectors work`` processes, for the worker tests and bench.

Each version of the model ``fleet`` gets a pinned reference and a current window of the tests'
seeded stream (``drift_scenario.records``); ``add_configs`` then puts one MMD on each.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from shiftwatch.collector import registry
from shiftwatch.db import Database
from shiftwatch.detectors import configs, references
from shiftwatch.settings import Settings
from tests.support.drift_scenario import log, records

MODEL = "fleet"


def fleet(db: Database, settings: Settings, n_versions: int, start: datetime, reference: int = 400, window: int = 200) -> list[int]:
    """``n_versions`` production versions, each with ``reference`` pinned rows from ``start`` and ``window`` rows after."""
    with db.session() as session:
        registry.register_model(session, MODEL, [str(i) for i in range(10)])
    version_ids = []
    for i in range(n_versions):
        version = f"v{i + 1}"
        with db.session() as session:
            version_ids.append(registry.register_version(session, MODEL, version, embedding_dim=64, state="production").id)
        rows = records(start, reference, seed=1000 + i) + records(start + timedelta(seconds=reference + 60), window, seed=i)
        log(db, settings, [dataclasses.replace(r, model=MODEL, version=version) for r in rows])
        with db.session() as session:
            references.pin_time_range(session, version_ids[-1], start, start + timedelta(seconds=reference + 1))
    return version_ids


def add_configs(
    db: Database, version_ids: list[int], window: int = 200, permutations: int = 200, alpha: float = 0.05, name: str = "mmd"
) -> list[int]:
    """One MMD (config ``name``) per version on its last ``window`` rows, due every 60 s."""
    with db.session() as session:
        return [
            configs.create(session, v, "mmd", name=name, params={"n_permutations": permutations}, window_last_n=window,
                           schedule_seconds=60, confirm_runs=1, alpha=alpha).id
            for v in version_ids
        ]  # fmt: skip


class WorkerProcess:
    """``shiftwatch detectors work`` as a real child process; its log is a file under ``log_dir``."""

    def __init__(self, database_url: str, data_dir: Path, *, ticks: int | None = None, **settings: str) -> None:
        self.env = {
            **os.environ,
            "SHIFTWATCH_DATABASE_URL": database_url,
            "SHIFTWATCH_DATA_DIR": str(data_dir),
            **{f"SHIFTWATCH_{k.upper()}": v for k, v in settings.items()},
        }
        self.ticks = ticks
        self.data_dir = data_dir
        self.process: subprocess.Popen | None = None
        self.log: Path | None = None

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-c", "from shiftwatch.cli import main; main()", "detectors", "work"]
        if self.ticks is not None:
            args += ["--ticks", str(self.ticks)]
        log = self.data_dir / f"worker-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen(args, env=self.env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
        self.log = log.with_name(f"worker-{self.process.pid}.log")
        log.rename(self.log)
        return self

    @property
    def worker_id(self) -> str:
        """What the worker writes as ``claimed_by`` (``shiftwatch.scheduler.REPLICA_ID``)."""
        assert self.process is not None
        return f"{socket.gethostname()}:{self.process.pid}"

    def text(self) -> str:
        return self.log.read_text() if self.log is not None and self.log.exists() else ""

    def tick_lines(self) -> list[str]:
        """The worker's one line per tick worked (``detectors.worker``)."""
        return [line for line in self.text().splitlines() if "detectors.worker" in line and " runs, " in line]

    def wait_for_ticks(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.tick_lines()) < n:
            assert self.process is not None
            if self.process.poll() is not None and len(self.tick_lines()) < n:
                raise RuntimeError(f"detector worker exited: {self.text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"detector worker worked fewer than {n} ticks: {self.text()[-2000:]}")
            time.sleep(0.05)

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: the run in hand is cut off, no handler runs."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
