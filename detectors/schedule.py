"""The detectors' background jobs: drift runs every tick, webhook deliveries every few seconds."""

from __future__ import annotations

from datetime import datetime

from shiftwatch.db import Database, utcnow
from shiftwatch.scheduler import ScheduledJob
from shiftwatch.settings import Settings

DETECTOR_JOB = "detectors.drift_runs"
WEBHOOK_JOB = "detectors.webhooks"
# Deliveries are cheap to poll for and people wait on them: check every 10 s.
WEBHOOK_EVERY_S = 10


def drift_tick(db: Database, settings: Settings, tick: datetime) -> None:
    """The drift job: the due versions this replica claims at the tick, tested on the data there is now."""
    # Lazy: runs brings scikit-learn, SciPy and pandas (seconds cold), which listing the jobs must not pay for.
    from shiftwatch.detectors.runs import run_due_detectors

    run_due_detectors(db, settings, utcnow(), tick=tick)


def webhook_tick(db: Database, settings: Settings, tick: datetime) -> None:
    """The delivery job: send the webhooks that are due (and retry the failed ones whose back-off ran out)."""
    from shiftwatch.detectors.webhooks import deliver_due, endpoints

    deliver_due(db, endpoints(settings.alert_webhooks, settings.alert_webhook_secrets), utcnow())


def jobs(settings: Settings) -> list[ScheduledJob]:
    """What the app's lifespan schedules for the detectors when ``scheduler_enabled``."""
    return [
        # Every replica works every tick: the versions due are claimed one at a time (detectors/claims.py).
        ScheduledJob(DETECTOR_JOB, settings.detector_tick_seconds, drift_tick, every_replica=True),
        ScheduledJob(WEBHOOK_JOB, WEBHOOK_EVERY_S, webhook_tick),
    ]
