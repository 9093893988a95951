"""``/metrics``: the process's own counters (ingest, gateway) plus fleet state read from the store at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from shiftwatch.db import Database, utcnow
from shiftwatch.detectors import metrics as detector_metrics
from shiftwatch.rollout import metrics as rollout_metrics


class StoreCollector(Collector):
    """Detector, alert and rollout gauges from one read transaction per scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        with self.db.session() as session:
            families = [*detector_metrics.families(session, now), *rollout_metrics.families(session, now)]
        yield from families


class Exposition:
    """What one app serves: the global registry (per-process counters) and its own store collector."""

    def __init__(self, db: Database) -> None:
        self.store = CollectorRegistry(auto_describe=False)
        self.store.register(StoreCollector(db))

    def render(self) -> bytes:
        return generate_latest(REGISTRY) + generate_latest(self.store)
