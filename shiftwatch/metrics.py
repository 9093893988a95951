"""``/metrics``: the process's own counters (ingest, gateway) plus fleet state read from the store at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from shiftwatch.collector.broker import BrokerPublisher
from shiftwatch.collector.metrics import broker_families
from shiftwatch.db import Database, utcnow
from shiftwatch.detectors import metrics as detector_metrics
from shiftwatch.rollout import metrics as rollout_metrics


class StoreCollector(Collector):
    """Detector, alert and rollout gauges from one read transaction per scrape (on the read replica when there is
    one: a scrape may lag), and the ingest broker's backlog when ingest goes through one."""

    def __init__(self, db: Database, broker: BrokerPublisher | None) -> None:
        self.db = db
        self.broker = broker

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        with self.db.reader().session() as session:
            families = [*detector_metrics.families(session, now), *rollout_metrics.families(session, now)]
        yield from families
        if self.broker is not None:
            yield from broker_families(self.broker)


class Exposition:
    """What one app serves: the global registry (per-process counters) and its own store collector."""

    def __init__(self, db: Database, broker: BrokerPublisher | None = None) -> None:
        self.store = CollectorRegistry(auto_describe=False)
        self.store.register(StoreCollector(db, broker))

    def render(self) -> bytes:
        return generate_latest(REGISTRY) + generate_latest(self.store)
