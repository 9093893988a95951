"""The rollout controller's background job: one controller pass per tick, on one replica."""

from __future__ import annotations

from datetime import datetime

from shiftwatch.db import Database, utcnow
from shiftwatch.rollout import controller
from shiftwatch.scheduler import ScheduledJob
from shiftwatch.settings import Settings

JOB_NAME = "rollout.controller"


def controller_tick(db: Database, settings: Settings, tick: datetime) -> None:
    """The scheduled job (shiftwatch.scheduler claims the tick, so one replica runs it)."""
    controller.tick(db, utcnow(), settings=settings)


def jobs(settings: Settings) -> list[ScheduledJob]:
    """What the app's lifespan schedules for rollout when ``scheduler_enabled``."""
    return [ScheduledJob(JOB_NAME, settings.rollout_tick_seconds, controller_tick)]
