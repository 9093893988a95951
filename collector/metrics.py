"""Prometheus metrics of the ingest path (served at ``/metrics``)."""

from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from shiftwatch.collector.broker import BrokerPublisher, BrokerUnavailable

INGESTED = Counter("shiftwatch_predictions_ingested", "Predictions stored (duplicates excluded)", ["model"])
DUPLICATES = Counter("shiftwatch_predictions_duplicate", "Predictions ignored as re-sent duplicates")
REJECTED = Counter("shiftwatch_predictions_rejected", "Predictions in batches refused as invalid", ["reason"])
INGEST_SECONDS = Histogram(
    "shiftwatch_ingest_seconds",
    "Time to validate and store one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUEUED = Counter(
    "shiftwatch_predictions_queued", "Predictions published to the ingest broker (stored later by an ingest worker)"
)


def broker_families(broker: BrokerPublisher) -> Iterator[Metric]:
    """The ingest broker's backlog, read from JetStream when scraped (the same on every replica: use ``max``)."""
    readable = GaugeMetricFamily("shiftwatch_ingest_broker_readable",
                                 "1 when the broker's consumer state could be read at this scrape")
    try:
        backlog = broker.backlog()
    except BrokerUnavailable:
        readable.add_metric([], 0.0)
        yield readable
        return
    readable.add_metric([], 1.0)
    yield readable
    yield GaugeMetricFamily("shiftwatch_ingest_broker_pending",
                            "Batches on the stream no ingest worker has taken yet (the lag)", value=backlog.pending)
    yield GaugeMetricFamily("shiftwatch_ingest_broker_unacked",
                            "Batches taken by a worker and not yet stored (redelivered after the ack wait)",
                            value=backlog.unacked)
    yield GaugeMetricFamily("shiftwatch_ingest_dead_letters", "Rows the store refused, kept on the dead-letter stream",
                            value=backlog.dead_letters)
