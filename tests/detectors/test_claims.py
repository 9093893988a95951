"""Per-version claims of a detector tick (detectors/claims.py), in process on both backends."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from shiftwatch.db import Database, utcnow
from shiftwatch.detectors import claims
from shiftwatch.detectors.configs import ConfigSpec
from shiftwatch.detectors.runs import run_due_detectors, run_version
from shiftwatch.detectors.tables import DetectorClaim, DetectorConfig, DriftRun
from shiftwatch.scheduler import tick_of
from tests.detectors.test_ops_scheduler import race
from tests.support.detector_fleet import add_configs, fleet
from tests.support.drift_scenario import REGISTRY


def ran(db: Database) -> list[int]:
    with db.session() as session:
        return sorted(session.scalars(select(DriftRun.config_id)).all())


def test_two_replicas_with_two_threads_each_run_every_version_once(db, db_url, settings):
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    config_ids = add_configs(db, fleet(db, settings, 4, start, reference=200, window=60), window=60, permutations=50)
    replica = Database.connect(db_url)  # a second process's engine on the same database
    now = start + timedelta(hours=1)
    tick = tick_of(now, settings.detector_tick_seconds)

    def worker(database: Database, name: str):
        return lambda: run_due_detectors(database, settings, now, tick=tick, registry=REGISTRY, worker=name)

    try:
        race([worker(db, "a1"), worker(db, "a2"), worker(replica, "b1"), worker(replica, "b2")])
    finally:
        replica.dispose()
    assert ran(db) == sorted(config_ids)  # each exactly once
    with db.session() as session:
        rows = session.scalars(select(DetectorClaim)).all()
    assert len(rows) == 4 and all(r.tick == tick and r.finished_at is not None for r in rows)


def test_a_dead_workers_claim_is_taken_once_its_lease_runs_out(db, settings):
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    (version_id,) = fleet(db, settings, 1, start, reference=200, window=60)
    (config_id,) = add_configs(db, [version_id], window=60, permutations=50)
    tick = tick_of(start + timedelta(hours=1), settings.detector_tick_seconds)
    claims.offer(db, [version_id])
    dead = claims.claim_next(db, [version_id], tick, "dead", lease_s=30)
    assert dead is not None  # and its worker never beats or finishes

    alive = settings.model_copy(update={"detector_lease_seconds": 0.2})
    assert run_due_detectors(db, alive, tick, tick=tick, registry=REGISTRY, worker="alive").runs == 0  # lease live
    time.sleep(0.3)
    assert run_due_detectors(db, alive, tick, tick=tick, registry=REGISTRY, worker="alive").runs == 1  # taken
    assert ran(db) == [config_id]
    assert run_due_detectors(db, alive, tick, tick=tick, registry=REGISTRY, worker="other").runs == 0  # done

    # The dead worker comes back and tries to write what it computed: refused, nothing written twice.
    with db.session() as session:
        spec = ConfigSpec.of(session.get(DetectorConfig, config_id))
    with pytest.raises(claims.LostClaim):
        run_version(db, settings, [spec], tick, tick, REGISTRY, dead)
    assert ran(db) == [config_id]
