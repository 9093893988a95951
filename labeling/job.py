"""The periodic labeling job inside ``shiftwatch serve``: select, push, and pull what the webhook missed."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shiftwatch.collector import registry
from shiftwatch.db import Database, utcnow
from shiftwatch.labeling.queue import select_for_labeling
from shiftwatch.labeling.studio import Studio
from shiftwatch.labeling.sync import pull, push
from shiftwatch.settings import Settings

log = logging.getLogger("shiftwatch.labeling")


class LabelingJob:
    """One cycle per tick; each model and each step fails alone (a Label Studio outage never stops selection)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.last_run: datetime | None = None

    def __call__(self) -> None:
        now = utcnow()
        since = self.last_run or now - timedelta(seconds=self.settings.labeling_sync_interval_s)
        with self.db.session() as session:
            models = [m.name for m in registry.list_models(session)]
        studio = Studio.from_settings(self.settings) if self.settings.label_studio_url else None
        for model in models:
            try:
                with self.db.session() as session:
                    select_for_labeling(session, self.settings, model, start=since, end=now, now=now)
            except Exception:  # noqa: BLE001 - logged; the next tick tries again
                log.exception("labeling selection failed for %s", model)
            if studio is None:
                continue
            try:
                result = push(self.db, self.settings, model, studio=studio)
                if result.error:
                    log.warning("labeling push for %s: %s (%d stay pending)", model, result.error, result.pending)
                pull(self.db, self.settings, model, studio=studio)
            except Exception:  # noqa: BLE001
                log.exception("labeling sync with Label Studio failed for %s", model)
        self.last_run = now
