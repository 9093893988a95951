"""The periodic labeling job inside ``shiftwatch serve``: select, push, and pull what the webhook missed."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shiftwatch.collector import registry
from shiftwatch.db import Database, utcnow
from shiftwatch.labeling.policy import Budget, select_for_labeling
from shiftwatch.labeling.studio import Studio
from shiftwatch.labeling.sync import pull, push
from shiftwatch.scheduler import ScheduledJob
from shiftwatch.settings import Settings

log = logging.getLogger("shiftwatch.labeling")


JOB_NAME = "labeling.sync"


def run_labeling_cycle(db: Database, settings: Settings, tick: datetime) -> None:
    """One cycle for every model: the audit slice of every route with traffic and the informative picks, then push and pull.

    Each model and each step fails alone (a Label Studio outage never
    stops selection). Runs once per tick across replicas (``shiftwatch.scheduler.claim_tick``); it
    selects from the last two intervals, so a tick a replica missed is covered (queueing is idempotent)."""
    now = utcnow()
    since = min(tick, now) - timedelta(seconds=2 * settings.labeling_sync_interval_s)
    with db.session() as session:
        models = [m.name for m in registry.list_models(session)]
    studio = None
    if settings.label_studio_url and not settings.label_studio_token:
        # The URL alone still serves Label Studio's pages the images (CORS); syncing needs the token too.
        log.warning("SHIFTWATCH_LABEL_STUDIO_TOKEN is not set: selecting only, no push or pull")
    elif settings.label_studio_url:
        studio = Studio.from_settings(settings)
    for model in models:
        try:
            with db.session() as session:
                select_for_labeling(session, model, Budget.of(settings, model), start=since, end=now, now=now)
        except Exception:
            log.exception("labeling selection failed for %s", model)
        if studio is None:
            continue
        try:
            result = push(db, settings, model, studio=studio)
            if result.error:
                log.warning("labeling push for %s: %s (%d stay pending)", model, result.error, result.pending)
            pull(db, studio, model)
        except Exception:
            log.exception("labeling sync with Label Studio failed for %s", model)


def jobs(settings: Settings) -> list[ScheduledJob]:
    """What the app's lifespan schedules for labeling (select, push, pull) when ``scheduler_enabled``."""
    return [ScheduledJob(JOB_NAME, settings.labeling_sync_interval_s, run_labeling_cycle)]
