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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, func, select, text

from shiftwatch.collector.tables import Prediction
from shiftwatch.db import Database
from shiftwatch_client.client import Client
from tests.support.servers import free_port


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

    def create(self) -> FaultCluster:
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
            except Exception:  # not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def drop(self) -> None:
        subprocess.run(["pg_ctlcluster", self.version, self.name, "stop", "-m", "immediate"], capture_output=True)
        subprocess.run(["pg_dropcluster", self.version, self.name], capture_output=True)


class StandbyCluster(FaultCluster):
    """A real streaming replica of ``primary``: ``pg_basebackup -R`` into a private cluster, a hot standby."""

    def __init__(self, primary: FaultCluster) -> None:
        super().__init__()
        self.primary = primary

    def create(self) -> StandbyCluster:
        super().create()  # a cluster of its own: its port and config; its data is replaced below
        engine = create_engine(self.url)
        with engine.connect() as connection:
            data_dir = connection.execute(text("SHOW data_directory")).scalar_one()
        engine.dispose()
        self.stop()
        for entry in Path(data_dir).iterdir():  # emptied, not removed: the directory is the owner's, mode 0700
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # the cluster's owner copies
        _run(*as_owner, "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
             "-D", data_dir, "-R", "-X", "stream", "-c", "fast", timeout=120)  # fmt: skip
        self.start()
        return self

    def sql(self, statement: str) -> object:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return connection.execute(text(statement)).scalar()
        finally:
            engine.dispose()

    def pause(self) -> None:
        """Stop replaying WAL: the replica holds still while the primary moves on."""
        self.sql("SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()")


def fault_cluster_or_skip() -> FaultCluster:
    problem = FaultCluster.available()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"fault tests need pg_createcluster in CI: {problem}")
        pytest.skip(f"no private PostgreSQL cluster possible: {problem}")
    return FaultCluster().create()


@contextmanager
def migrated_fault_cluster() -> Iterator[FaultCluster]:
    """A private cluster at the schema's head for one test module, dropped after it (skipped where impossible)."""
    from shiftwatch.migrate import upgrade

    cluster = fault_cluster_or_skip()
    try:
        upgrade(cluster.url)
        yield cluster
    finally:
        cluster.drop()


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
            "SHIFTWATCH_AUTH_REQUIRED": "false",  # loopback only; a test that checks auth passes auth_required="true"
            **{f"SHIFTWATCH_{k.upper()}": v for k, v in settings.items()},
        }
        self.process: subprocess.Popen | None = None
        self.log = data_dir / f"serve-{self.port}.log"

    def start(self, timeout: float = 60) -> ServeProcess:
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


def log_n(client: Client, n: int, seed: int = 0, pause_every: int = 0, pause_s: float = 0.0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        probs = rng.dirichlet(np.ones(10))
        client.log("digits", "v1", int(probs.argmax()), float(probs.max()), embedding=rng.normal(size=64), probabilities=probs)
        if pause_every and i % pause_every == pause_every - 1:
            time.sleep(pause_s)


@contextmanager
def predictions_locked(url: str) -> Iterator[None]:
    """Hold an exclusive lock on ``predictions``: any ingest blocks inside its transaction until release."""
    engine = create_engine(url)
    connection = engine.connect()
    transaction = connection.begin()
    connection.execute(text("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE"))
    try:
        yield
    finally:
        transaction.rollback()
        connection.close()
        engine.dispose()


def wait_for_count(url: str, sql: str, done, what: str, timeout: float = 20) -> None:
    """Poll a ``SELECT count(*)`` until ``done(count)``; AssertionError naming ``what`` after ``timeout``."""
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as connection:
                if done(connection.execute(text(sql)).scalar_one()):
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting: {what}")
            time.sleep(0.05)
    finally:
        engine.dispose()


def wait_for_lock_waiters(url: str) -> None:
    """Until some transaction (an ingest) is blocked on a lock in this database."""
    sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    wait_for_count(url, sql, lambda n: n >= 1, "no ingest transaction is waiting on the lock")


def wait_for_no_open_transactions(url: str) -> None:
    """Until no other session has a statement running or a transaction open (a killed client's backend is gone)."""
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
    )
    wait_for_count(url, sql, lambda n: n == 0, "a transaction of the killed server is still open")


def stored_count(db: Database, distinct: bool = False) -> int:
    """Predictions in the table (or distinct ids: equal when nothing is stored twice)."""
    what = func.count(func.distinct(Prediction.id)) if distinct else func.count()
    with db.session() as session:
        return int(session.scalar(select(what).select_from(Prediction)))
