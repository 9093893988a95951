"""Detector and alert series for Prometheus, read from the database when scraped.

Read from the store rather than counted in-process: detector runs may happen on any replica or worker,
and every replica then reports the same fleet-wide state (Prometheus keeps one series per target; use
``max by`` across replicas).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.detectors.tables import Alert, DetectorConfig, DriftRun

CONFIG_LABELS = ["model", "version", "detector"]


def families(session: Session, now: datetime) -> Iterator[Metric]:
    """The last run of every enabled detector (age, p-value, decision) and the open alerts by severity."""
    age = GaugeMetricFamily("shiftwatch_detector_last_run_age_seconds",
                            "Seconds since the detector's last run of any status", labels=CONFIG_LABELS)
    p_value = GaugeMetricFamily("shiftwatch_detector_last_p_value",
                                "The last run's p-value after Holm (absent when it had none)", labels=CONFIG_LABELS)
    drift = GaugeMetricFamily("shiftwatch_detector_drift",
                              "1 when the last run decided drift, else 0", labels=CONFIG_LABELS)
    failed = GaugeMetricFamily("shiftwatch_detector_last_run_failed",
                               "1 when the last run failed (why: the run's note)", labels=CONFIG_LABELS)
    last = (select(DriftRun.config_id, func.max(DriftRun.id).label("run_id"))
            .group_by(DriftRun.config_id).subquery())
    rows = session.execute(
        select(Model.name, ModelVersion.version, DetectorConfig.name, DriftRun)
        .join(ModelVersion, ModelVersion.model_id == Model.id)
        .join(DetectorConfig, DetectorConfig.model_version_id == ModelVersion.id)
        .join(last, last.c.config_id == DetectorConfig.id)
        .join(DriftRun, DriftRun.id == last.c.run_id)
        .where(DetectorConfig.enabled.is_(True))
    )
    for model, version, name, run in rows:
        labels = [model, version, name]
        age.add_metric(labels, max(0.0, (now - run.tick).total_seconds()))
        drift.add_metric(labels, float(bool(run.decision)))
        failed.add_metric(labels, float(run.status == "failed"))
        p = run.adjusted_p_value if run.adjusted_p_value is not None else run.p_value
        if p is not None:
            p_value.add_metric(labels, p)
    yield from (age, p_value, drift, failed)

    alerts = GaugeMetricFamily("shiftwatch_alerts_open", "Alerts not yet resolved, by model and severity",
                               labels=["model", "severity"])
    counts = session.execute(
        select(Model.name, Alert.severity, func.count(Alert.id))
        .join(ModelVersion, ModelVersion.id == Alert.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Alert.state != "resolved")
        .group_by(Model.name, Alert.severity)
    )
    for model, severity, count in counts:
        alerts.add_metric([model, severity], float(count))
    yield alerts
