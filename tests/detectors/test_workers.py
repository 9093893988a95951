"""N detector workers split a tick: real ``shiftwatch detectors work`` processes on PostgreSQL, one SIGKILLed mid-run."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shiftwatch.db import Database, utcnow
from shiftwatch.detectors.tables import DetectorClaim, DriftRun
from tests.support.detector_fleet import WorkerProcess, add_configs, fleet

pytestmark = [pytest.mark.parametrize("backend", ["postgres"]), pytest.mark.slow]  # real processes: seconds each
TICK_S = 3


def runs_by_config(db: Database) -> dict[int, list]:
    with db.session() as session:
        rows = session.execute(select(DriftRun.config_id, DriftRun.tick)).all()
    found: dict[int, list] = {}
    for config_id, tick in rows:
        found.setdefault(config_id, []).append(tick)
    return found


def wait_until(done, what: str, timeout: float, workers: list[WorkerProcess] = ()) -> None:
    """Poll ``done()``; after ``timeout`` fail naming ``what``, with the end of each worker's log."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.worker_id}\n{w.text()[-1500:]}" for w in workers)
            raise AssertionError(f"gave up waiting: {what}\n{logs}")
        time.sleep(0.05)


def started_idle(db_url: str, tmp_path, **settings: str) -> list[WorkerProcess]:
    """Two workers that have each worked one (empty) tick: from here on they wake at the same tick boundaries."""
    workers = [WorkerProcess(db_url, tmp_path / f"worker{i}", detector_tick_seconds=str(TICK_S), **settings).start()
               for i in range(2)]  # fmt: skip
    for worker in workers:
        worker.wait_for_ticks(1)
    return workers


def test_two_workers_split_a_tick_and_each_config_runs_once(db, db_url, settings, tmp_path):
    versions = fleet(db, settings, 20, (utcnow() - timedelta(hours=2)).replace(microsecond=0), reference=200, window=100)
    workers = started_idle(db_url, tmp_path)
    try:
        config_ids = add_configs(db, versions, window=100, permutations=100)
        wait_until(lambda: len(runs_by_config(db)) == 20, "a run of each of the 20 configs", 40, workers)
        time.sleep(TICK_S + 0.5)  # one more tick: nothing new to test, so nothing may run again
    finally:
        for worker in workers:
            worker.stop()
    runs = runs_by_config(db)
    assert sorted(runs) == sorted(config_ids)
    assert all(len(ticks) == 1 for ticks in runs.values()), runs  # exactly once
    with db.session() as session:
        by_worker = dict(session.execute(
            select(DetectorClaim.claimed_by, func.count()).group_by(DetectorClaim.claimed_by)).tuples().all())
    assert set(by_worker) == {w.worker_id for w in workers}, by_worker  # both did work
    assert sum(by_worker.values()) == 20


def test_a_worker_killed_mid_run_leaves_its_version_to_the_other_by_the_next_tick(db, db_url, settings, tmp_path):
    versions = fleet(db, settings, 6, (utcnow() - timedelta(hours=2)).replace(microsecond=0))
    # lease 1 s < the 3 s tick: a dead worker's claim is takeable by the next tick
    victim, survivor = workers = started_idle(db_url, tmp_path, detector_lease_seconds="1")
    try:
        config_ids = add_configs(db, versions, permutations=500)  # ~0.2 s a version on a quiet machine: a run to cut short

        def held_by_victim() -> DetectorClaim | None:
            with db.session() as session:
                return session.scalars(select(DetectorClaim).where(
                    DetectorClaim.claimed_by == victim.worker_id, DetectorClaim.finished_at.is_(None))).first()

        wait_until(lambda: held_by_victim() is not None, "the victim holding a claim", 30, workers)
        claim = held_by_victim()
        victim.kill()
        assert claim is not None
        with db.session() as session:  # cut off before its write: the claim is still the dead worker's
            row = session.get(DetectorClaim, claim.model_version_id)
            assert row is not None and row.claimed_by == victim.worker_id and row.finished_at is None
        (lost_config,) = [c for c, v in zip(config_ids, versions) if v == claim.model_version_id]
        wait_until(lambda: lost_config in runs_by_config(db), "the killed worker's config to run", 30, workers)
        wait_until(lambda: len(runs_by_config(db)) == len(versions), "a run of every config", 30, workers)
    finally:
        for worker in workers:
            worker.stop()
    runs = runs_by_config(db)
    assert all(len(ticks) == 1 for ticks in runs.values()), runs  # nothing ran twice
    (tick,) = runs[lost_config]
    assert tick <= claim.tick + timedelta(seconds=TICK_S)  # at the killed tick or the next one
    with db.session() as session:
        row = session.get(DetectorClaim, claim.model_version_id)
        assert row is not None and row.claimed_by == survivor.worker_id and row.finished_at is not None
    assert "expired" in survivor.text()  # the survivor says whose claim it took
