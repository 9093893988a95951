"""A detector worker: a process that runs the drift job at every tick, splitting each tick with the other workers.

``shiftwatch detectors work`` runs this loop; any number of them (on any host, with any number of
``shiftwatch serve`` replicas whose schedulers do the same) share a tick through
``detectors.claims``. A worker started mid-tick helps with what is left of the current tick.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from shiftwatch.db import Database, utcnow
from shiftwatch.detectors import DETECTORS
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.scheduler import tick_of
from shiftwatch.settings import Settings

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Import every registered detector now: cold, they cost seconds, which a worker's first busy tick must not pay."""
    for name in DETECTORS:
        DETECTORS[name]


def work(db: Database, settings: Settings, ticks: int | None = None, stop: threading.Event | None = None) -> int:
    """Run the drift job at each tick until ``ticks`` ticks were worked (None: until ``stop`` is set); ticks worked."""
    stop = stop or threading.Event()
    started = time.perf_counter()
    warm_up()
    log.info("detector worker ready in %.1f s", time.perf_counter() - started)
    every = timedelta(seconds=settings.detector_tick_seconds)
    worked, last = 0, None
    while not stop.is_set() and (ticks is None or worked < ticks):
        tick = tick_of(utcnow(), settings.detector_tick_seconds)
        if tick == last:  # this tick is worked: sleep until the next one
            stop.wait(max(0.0, (tick + every - utcnow()).total_seconds()))
            continue
        started = time.perf_counter()
        report = run_due_detectors(db, settings, utcnow(), tick=tick)
        log.info("tick %s: %d runs, %d quiet, %d failed versions, %.2f s", tick.isoformat(), report.runs,
                 len(report.quiet), len(report.failed_versions), time.perf_counter() - started)  # fmt: skip
        worked, last = worked + 1, tick
    return worked
