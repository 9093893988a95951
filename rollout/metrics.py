"""Rollout series for Prometheus, read from the database when scraped (the controller may run on any replica)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.rollout.states import ACTIVE_STATES
from shiftwatch.rollout.status import current_share
from shiftwatch.rollout.tables import Rollout

LABELS = ["model", "candidate", "baseline"]


def families(session: Session, now: datetime) -> Iterator[Metric]:
    """Each active rollout: its stage, its canary share, how long it has been in that stage, the controller's word."""
    stage = GaugeMetricFamily("shiftwatch_rollout_stage", "1 for the stage an active rollout is in",
                              labels=[*LABELS, "stage"])
    share = GaugeMetricFamily("shiftwatch_rollout_canary_share", "Share of traffic the candidate answers",
                              labels=LABELS)
    in_stage = GaugeMetricFamily("shiftwatch_rollout_stage_age_seconds", "Seconds since the rollout entered its stage",
                                 labels=LABELS)
    decision = GaugeMetricFamily("shiftwatch_rollout_decision",
                                 "1 for the controller's latest decision (await_approval: a person must approve)",
                                 labels=[*LABELS, "decision"])
    candidate, baseline = aliased(ModelVersion), aliased(ModelVersion)
    rows = session.execute(
        select(Model.name, candidate.version, baseline.version, Rollout)
        .join(Model, Model.id == Rollout.model_id)
        .join(candidate, candidate.id == Rollout.candidate_version_id)
        .join(baseline, baseline.id == Rollout.baseline_version_id)
        .where(Rollout.state.in_(ACTIVE_STATES))
    )
    for model, candidate_version, baseline_version, rollout in rows:
        labels = [model, candidate_version, baseline_version]
        stage.add_metric([*labels, rollout.state], 1.0)
        share.add_metric(labels, current_share(rollout))
        in_stage.add_metric(labels, max(0.0, (now - rollout.stage_started_at).total_seconds()))
        said = rollout.last_decision.get("decision")
        if said:
            decision.add_metric([*labels, str(said)], 1.0)
    yield from (stage, share, in_stage, decision)
