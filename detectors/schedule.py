"""The detectors' background jobs: drift runs every tick, webhook deliveries every few seconds."""

from __future__ import annotations

from datetime import datetime

from shiftwatch.db import Database
from shiftwatch.scheduler import ScheduledJob
from shiftwatch.settings import Settings

DETECTOR_JOB = "detectors.drift_runs"
WEBHOOK_JOB = "detectors.webhooks"
# Deliveries are cheap to poll for and people wait on them: check every 10 s.
WEBHOOK_EVERY_S = 10


def drift_tick(db: Database, settings: Settings, tick: datetime) -> None:
    from shiftwatch.db import utcnow
    from shiftwatch.detectors.runs import run_due_detectors

    run_due_detectors(db, settings, utcnow())


def webhook_tick(db: Database, settings: Settings, tick: datetime) -> None:
    from shiftwatch.db import utcnow
    from shiftwatch.detectors.webhooks import deliver_due

    deliver_due(db, settings, utcnow())


def jobs(settings: Settings) -> list[ScheduledJob]:
    """What the app's lifespan schedules for the detectors when ``scheduler_enabled``."""
    return [
        ScheduledJob(DETECTOR_JOB, settings.detector_tick_seconds, drift_tick),
        ScheduledJob(WEBHOOK_JOB, WEBHOOK_EVERY_S, webhook_tick),
    ]
