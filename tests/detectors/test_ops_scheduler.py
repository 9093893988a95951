"""One run per job and tick across replicas: claim_tick, the scheduled detector job, and a real APScheduler."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select, text

from shiftwatch import scheduler
from shiftwatch.db import Database, utcnow
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.detectors.tables import DriftRun
from shiftwatch.scheduler import ScheduledJob, claim_tick, tick_of
from shiftwatch.scheduler_tables import JobTick
from tests.support.drift_scenario import REGISTRY, add_config, log, pin_reference, records


def race(targets: list, rounds: int = 1) -> None:
    """Start every target at once (a barrier), wait for all."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrapped(target) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_each_tick_is_claimed_once_by_two_replicas_with_four_threads_each(db, db_url):
    replica = Database.connect(db_url)  # a second process's engine on the same database
    base = tick_of(utcnow(), 60)
    ticks = [base + timedelta(minutes=i) for i in range(10)]
    wins: list[tuple[int, datetime]] = []
    lock = threading.Lock()

    def claimer(database: Database, who: int):
        def claim_all() -> None:
            for tick in ticks:
                if claim_tick(database, "test.job", tick):
                    with lock:
                        wins.append((who, tick))

        return claim_all

    try:
        race([claimer(db if i % 2 else replica, i) for i in range(8)])
    finally:
        replica.dispose()
    assert sorted(t for _, t in wins) == ticks
    assert claim_tick(db, "other.job", ticks[0])  # ticks are per job


def test_two_replicas_firing_the_detector_job_write_each_run_once(db, db_url, settings, digits_model):
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    pin_reference(db, settings, digits_model.id, start)
    add_config(db, digits_model.id)
    log(db, settings, records(start + timedelta(minutes=10), 200, seed=3))
    replica = Database.connect(db_url)
    now = start + timedelta(minutes=20)
    tick = tick_of(now, settings.detector_tick_seconds)

    def fire(database: Database):
        def body() -> None:
            if claim_tick(database, "detectors.drift_runs", tick):
                run_due_detectors(database, settings, now, registry=REGISTRY)

        return body

    try:
        race([fire(db), fire(replica), fire(db), fire(replica)])
    finally:
        replica.dispose()
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(DriftRun)) == 1


def test_a_failed_job_spends_its_tick_and_runs_again_next_tick(db, settings):
    calls: list[datetime] = []

    def flaky(database, settings_, tick):
        calls.append(tick)
        if len(calls) == 1:
            raise RuntimeError("crash mid-run")

    scheduler.bind(db, settings, ScheduledJob("test.flaky", 60, flaky))
    first = tick_of(utcnow(), 60)
    assert scheduler.run_job("test.flaky", now=first) is False  # crashed
    assert scheduler.run_job("test.flaky", now=first + timedelta(seconds=5)) is False  # same tick: already claimed
    assert scheduler.run_job("test.flaky", now=first + timedelta(seconds=60)) is True
    assert calls == [first, first + timedelta(seconds=60)]
    scheduler.stop_job("test.flaky")


@pytest.mark.slow
def test_background_scheduler_with_the_database_job_store_runs_the_job_each_tick(db, settings):
    ticks: list[datetime] = []
    scheduler.start_job(db, settings, ScheduledJob("test.every_second", 1, lambda d, s, tick: ticks.append(tick)))
    try:
        deadline = time.monotonic() + 10
        while len(ticks) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.stop_job("test.every_second")
        with db.engine.begin() as connection:  # the stored job would outlive this test in the shared database
            connection.execute(text("DELETE FROM apscheduler_jobs WHERE id = 'test.every_second'"))
    assert len(ticks) >= 2 and len(set(ticks)) == len(ticks)
    assert "apscheduler_jobs" in inspect(db.engine).get_table_names()
    with db.session() as session:
        claimed = session.scalars(select(JobTick.tick).where(JobTick.job_name == "test.every_second")).all()
    assert set(ticks) <= set(claimed)


def test_serve_starts_the_detector_jobs_on_startup_and_stops_them_on_shutdown(db, settings):
    from fastapi.testclient import TestClient

    from shiftwatch.app import create_app
    from shiftwatch.detectors import schedule

    app = create_app(settings.model_copy(update={"scheduler_enabled": True}), db)
    try:
        with TestClient(app):
            assert scheduler._scheduler is not None
            stored = {job.id for job in scheduler._scheduler.get_jobs()}
            assert {schedule.DETECTOR_JOB, schedule.WEBHOOK_JOB} <= stored
        assert scheduler._scheduler is None or schedule.DETECTOR_JOB not in scheduler._bound
    finally:
        with db.engine.begin() as connection:
            connection.execute(text("DELETE FROM apscheduler_jobs WHERE id LIKE 'detectors.%'"))
