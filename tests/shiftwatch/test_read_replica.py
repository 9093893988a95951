"""SHIFTWATCH_READ_DATABASE_URL on a real streaming replica (pg_basebackup into a private cluster).

The replica is paused (``pg_wal_replay_pause``) to make lag as long as a test needs: what the
read path shows then is the replica's, and what must read its own writes shows the primary's.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from shiftwatch.collector import registry
from shiftwatch.collector.tables import Prediction
from shiftwatch.db import Database, utcnow
from shiftwatch.detectors import runs
from shiftwatch.detectors.tables import DriftRun
from shiftwatch.settings import Settings
from tests.support.console import open_drift_alert
from tests.support.databases import empty_all_tables
from tests.support.drift_scenario import add_config, log, pin_reference, records
from tests.support.servers import TEST_CLIENT_HOST

pytestmark = pytest.mark.slow  # two private clusters and a base backup: ~10 s


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple]:
    from tests.support.pg_processes import StandbyCluster, migrated_fault_cluster

    with migrated_fault_cluster() as primary:
        standby = StandbyCluster(primary).create()
        try:
            yield primary, standby
        finally:
            standby.drop()


@pytest.fixture
def replicated(clusters, tmp_path) -> Iterator[tuple[Database, Settings]]:
    primary, standby = clusters
    db = Database.connect(primary.url, standby.url)
    settings = Settings(database_url=primary.url, read_database_url=standby.url, data_dir=tmp_path / "data",
                        scheduler_enabled=False, auth_required=False, allowed_hosts=[TEST_CLIENT_HOST],
                        public_url=f"http://{TEST_CLIENT_HOST}", embedding_keep_rate=1.0)  # fmt: skip
    yield db, settings
    standby.resume()
    empty_all_tables(db)
    db.dispose()


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)))


def caught_up(db: Database, timeout: float = 20) -> float:
    """Wait until the replica has replayed everything the primary wrote so far; the seconds it took."""
    with db.engine.connect() as connection:
        target = connection.execute(text("SELECT pg_current_wal_lsn()")).scalar_one()
    started = time.perf_counter()
    assert db.replica is not None
    with db.replica.engine.connect() as connection:
        while not connection.execute(text("SELECT pg_last_wal_replay_lsn() >= CAST(:t AS pg_lsn)"), {"t": target}).scalar():
            assert time.perf_counter() - started < timeout, "the replica did not catch up"
            time.sleep(0.005)
    return time.perf_counter() - started


def test_replica_lag_is_measured_and_small(replicated):
    db, _ = replicated
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
    lags = []
    for i in range(20):  # a commit on the primary, then the time until a read on the replica sees it
        with db.session() as session:
            registry.register_version(session, "digits", f"lag{i}", embedding_dim=8)
        lags.append(caught_up(db))
    print(f"replica lag over 20 commits: median {statistics.median(lags) * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms")
    assert statistics.median(lags) < 1.0 and max(lags) < 5.0


def test_detector_windows_read_the_replica_and_runs_read_the_primary(replicated, clusters):
    db, settings = replicated
    _, standby = clusters
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        version_id = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production").id
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    pin_reference(db, settings, version_id, start)
    config_id = add_config(db, version_id, window_last_n=1000)  # the window is every row the replica has (<= 1000)
    log(db, settings, records(start + timedelta(minutes=10), 200, seed=2))
    caught_up(db)

    standby.pause()
    log(db, settings, records(start + timedelta(minutes=30), 100, seed=3))  # on the primary only, for now
    with db.session() as session, db.reader().session() as replica_session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 700
        assert replica_session.scalar(select(func.count()).select_from(Prediction)) == 600
    now = start + timedelta(hours=1)
    first = runs.run_due_detectors(db, settings, now)
    assert first.runs == 1
    with db.session() as session:
        (run,) = session.scalars(select(DriftRun).where(DriftRun.config_id == config_id)).all()
    assert run.n_current == 600  # the replica's window: the 100 rows it has not replayed are not in it
    # Still paused: the run just written is on the primary only. Had "what ran last?" been read from the
    # replica, this tick would test the same window again; it reads the primary and finds nothing new.
    second = runs.run_due_detectors(db, settings, now + timedelta(minutes=5))
    assert (second.runs, second.quiet) == (0, (config_id,))

    standby.resume()
    caught_up(db)
    third = runs.run_due_detectors(db, settings, now + timedelta(minutes=10))
    assert third.runs == 1  # the replayed rows are new to the watermark read on the replica
    with db.session() as session:
        newest = session.scalars(select(DriftRun).where(DriftRun.config_id == config_id).order_by(DriftRun.tick.desc())).first()
    assert newest is not None and newest.n_current == 700
    caught_up(db)
    with db.reader().session() as replica_session:  # the dashboards' views answer on the replica too
        assert replica_session.scalar(text("SELECT count(*) FROM sw_drift_runs")) == 2


def alert_state(html: str) -> str:
    found = re.search(r'id="alert-state">([^<]+)<', html)
    assert found, html[:500]
    return found.group(1)


def test_console_pages_read_the_replica_but_a_page_after_your_own_write_reads_the_primary(replicated, clusters):
    from fastapi.testclient import TestClient

    from shiftwatch.app import create_app

    db, settings = replicated
    _, standby = clusters
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        version_id = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production").id
    open_drift_alert(db, settings, version_id)
    caught_up(db)
    origin = {"Origin": f"http://{TEST_CLIENT_HOST}"}
    with TestClient(create_app(settings, db)) as client:
        alerts_html = client.get("/console/alerts").text
        alert_path = re.search(r'href="(?:http://[^/"]+)?(/console/alerts/\d+)"', alerts_html)
        assert alert_path, alerts_html[:500]
        page = client.get(alert_path.group(1)).text
        assert alert_state(page) == "open"
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf

        standby.pause()
        with db.session() as session:  # a model registered while the replica is paused: not on its pages yet
            registry.register_model(session, "late-model", ["a", "b"])
        assert "late-model" not in client.get("/console/models").text
        acted = client.post(f"{alert_path.group(1)}/acknowledge", data={"csrf_token": csrf.group(1)}, headers=origin)
        assert acted.status_code == 200 and "flash=" in str(acted.url)  # followed the 303 to the alert page
        assert alert_state(acted.text) == "acknowledged"  # the person's own write, read back from the primary
        assert alert_state(client.get(alert_path.group(1)).text) == "open"  # any other view: the paused replica

        standby.resume()
        caught_up(db)
        assert alert_state(client.get(alert_path.group(1)).text) == "acknowledged"
        assert "late-model" in client.get("/console/models").text


def test_a_read_url_without_a_postgresql_primary_is_refused(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs a PostgreSQL database_url"):
        Settings(database_url=f"sqlite:///{tmp_path}/x.db", read_database_url="postgresql://h/db")
    with pytest.raises(ValidationError, match="must be a postgresql"):
        Settings(database_url="postgresql://h/db", read_database_url="mysql://h/db")
    assert Settings(database_url="postgresql://h/db", read_database_url="postgresql://r/db").read_database_url == (
        "postgresql+psycopg://r/db")
