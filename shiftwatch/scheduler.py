"""Background jobs for every domain: one APScheduler per process, one run per job and tick across replicas.

Each API replica starts its own ``BackgroundScheduler`` on a job store in the shared database
(APScheduler's ``SQLAlchemyJobStore``, table ``apscheduler_jobs``). APScheduler 3 does not
coordinate several schedulers on one store, so two replicas may both fire the same job; the job
body therefore starts with ``claim_tick``: an insert of (job_name, tick) under a primary key,
which exactly one replica wins (a job marked ``every_replica`` skips it and claims its own units of
work: the detectors' drift runs, one model version at a time). A replica that crashes mid-run has consumed its tick; the work
it left undone is still due and runs on the next tick (domain jobs decide "due" from their own
committed rows, and write each result in one transaction).

Each domain declares its jobs with one hook, ``jobs(settings) -> list[ScheduledJob]``
(``detectors/schedule.py``, ``labeling/job.py``, ``rollout/job.py``, ``shiftwatch/maintenance.py``);
``shiftwatch.app`` lists the hooks in ``JOBS`` and starts and stops them in its lifespan.

Jobs are stored in the job store by name only (``run_job(name)``); the callable and the
process's ``Database``/``Settings`` are bound here at start, so nothing secret is pickled into
the database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shiftwatch.db import Database, utcnow
from shiftwatch.scheduler_tables import JobTick
from shiftwatch.settings import Settings

log = logging.getLogger(__name__)

# Claimed ticks older than this are deleted as new ones are claimed: only "has this tick run?" matters.
TICK_RETENTION = timedelta(days=2)
REPLICA_ID = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A job every replica schedules: ``func(db, settings, tick)`` runs once per ``every_seconds`` tick.

    ``every_replica``: the job splits a tick's work itself (the detectors' per-version claims), so
    each replica runs it at every tick instead of one replica claiming the whole tick.
    """

    name: str
    every_seconds: int
    func: Callable[[Database, Settings, datetime], Any]
    every_replica: bool = False


def tick_of(now: datetime, every_seconds: int) -> datetime:
    """The tick ``now`` falls in: UTC time floored to a multiple of ``every_seconds`` since the epoch.

    Every replica computes the same tick for the same firing, however late its clock fires.
    """
    seconds = int(now.timestamp()) // every_seconds * every_seconds
    return datetime.fromtimestamp(seconds, tz=UTC)


def claim_tick(db: Database, job_name: str, tick: datetime) -> bool:
    """True for exactly one caller per (job_name, tick), across threads, processes and replicas."""
    values = {"job_name": job_name, "tick": tick, "claimed_by": REPLICA_ID, "claimed_at": utcnow()}
    dialect_insert = pg_insert if db.is_postgres else sqlite_insert
    stmt = (
        dialect_insert(JobTick)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["job_name", "tick"])
        .returning(JobTick.job_name)  # rowcount is -1 through the ORM on psycopg; a returned row is unambiguous
    )
    with db.session() as session:
        won = session.execute(stmt).first() is not None
        if won:
            session.execute(delete(JobTick).where(JobTick.job_name == job_name, JobTick.tick < tick - TICK_RETENTION))
    return won


@dataclass
class _Bound:
    job: ScheduledJob
    db: Database
    settings: Settings


_lock = threading.Lock()
_bound: dict[str, _Bound] = {}
_scheduler: Any = None  # apscheduler BackgroundScheduler, started with the first job


def run_job(name: str, now: datetime | None = None) -> bool:
    """What the job store calls: claim this tick, then run the job. False when another replica had it."""
    bound = _bound.get(name)
    if bound is None:  # a job another replica registered; this process cannot run it
        log.warning("job %s is in the job store but not registered in this process", name)
        return False
    tick = tick_of(now or utcnow(), bound.job.every_seconds)
    if not bound.job.every_replica and not claim_tick(bound.db, name, tick):
        return False
    try:
        bound.job.func(bound.db, bound.settings, tick)
    except Exception:  # the tick is spent; the undone work is still due next tick
        log.exception("job %s failed at tick %s; it is retried on the next tick", name, tick.isoformat())
        return False
    return True


def bind(db: Database, settings: Settings, job: ScheduledJob) -> None:
    """Make ``job`` runnable by ``run_job(job.name)`` in this process (``start_job`` also schedules it)."""
    with _lock:
        _bound[job.name] = _Bound(job, db, settings)


def start_job(db: Database, settings: Settings, job: ScheduledJob) -> None:
    """Schedule ``job`` in this process's scheduler (started on first use, job store in ``db``)."""
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    global _scheduler
    bind(db, settings, job)
    with _lock:
        if _scheduler is None:
            _scheduler = BackgroundScheduler(
                # "local": every_replica jobs. In the shared store one replica's firing moves the job's
                # next run time for all, so the others would often skip the tick it must run on each.
                jobstores={"default": SQLAlchemyJobStore(engine=db.engine), "local": MemoryJobStore()},
                # A replica that was down does not replay missed ticks: the next tick covers them.
                job_defaults={"coalesce": True, "max_instances": 1},
                timezone=UTC,
            )
            _scheduler.start()
        if job.every_replica and _scheduler.get_job(job.name, jobstore="default") is not None:
            _scheduler.remove_job(job.name, jobstore="default")  # stored there by a release before it ran on every replica
        # Aligned to multiples of the interval since the epoch, so every replica fires on the same tick.
        _scheduler.add_job(
            run_job,
            "interval",
            seconds=job.every_seconds,
            start_date=tick_of(utcnow(), job.every_seconds),
            id=job.name,
            args=[job.name],
            jobstore="local" if job.every_replica else "default",
            misfire_grace_time=job.every_seconds,
            replace_existing=True,
        )


def stop_job(name: str) -> None:
    """Forget ``name`` in this process; the scheduler stops with the last job. The stored job stays for other replicas."""
    global _scheduler
    with _lock:
        _bound.pop(name, None)
        if not _bound and _scheduler is not None:
            _scheduler.shutdown(wait=True)
            _scheduler = None
