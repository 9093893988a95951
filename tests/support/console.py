"""Demo-like data for the console and dashboard tests, written by each package's own functions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import numpy as np

from shiftwatch.collector import registry
from shiftwatch.db import utcnow
from shiftwatch_client.records import PredictionRecord
from tests.support.collector import store_predictions


def predictions(version: str, n: int, *, shift: float = 0.0, route: str = "production", seed: int = 0,
                minutes_ago: float = 30.0, model: str = "digits") -> list[PredictionRecord]:
    rng = np.random.default_rng(seed)
    start = utcnow() - timedelta(minutes=minutes_ago)
    records = []
    for i in range(n):
        probabilities = rng.dirichlet(np.ones(10) * 0.3).astype(np.float32)
        predicted = int(probabilities.argmax())
        records.append(PredictionRecord(
            model=model, version=version, predicted_class=predicted, confidence=float(probabilities[predicted]),
            embedding=(rng.normal(shift, 1.0, 64)).astype(np.float32), probabilities=probabilities, route=route,
            request_id=f"{route}-{seed}-{i}", input_ref=f"inputs/{uuid.uuid4().hex}{uuid.uuid4().hex}.png",
            latency_ms=float(rng.gamma(2.0, 2.0)), ts=start + timedelta(seconds=i * 2),
        ))
    return records


def open_drift_alert(db, settings, version_id: int, input_refs: list[str] | None = None, model: str = "digits") -> None:
    """Traffic for ``<model>:v1`` (``version_id``), a reference before a shift, and one MMD run that opens an alert.

    ``input_refs``: stored input images the predictions refer to, in turn (default: references to nothing).
    """
    from shiftwatch.detectors import configs, references, runs

    def with_inputs(records: list[PredictionRecord]) -> list[PredictionRecord]:
        return [replace(r, input_ref=input_refs[i % len(input_refs)]) for i, r in enumerate(records)] if input_refs else records

    store_predictions(db, settings, with_inputs(predictions("v1", 300, minutes_ago=50, model=model)))
    reference_end = utcnow() - timedelta(minutes=35)
    store_predictions(db, settings, with_inputs(predictions("v1", 300, shift=0.8, seed=1, minutes_ago=30, model=model)))
    with db.session() as session:
        references.pin_time_range(session, version_id, reference_end - timedelta(hours=1), reference_end)
        configs.create(session, version_id, "mmd", window_last_n=300, schedule_seconds=1, confirm_runs=1)
    report = runs.run_due_detectors(db, settings, utcnow())
    assert report.opened, "the shifted window should open an alert"


def load_demo_like_data(db, settings) -> None:
    """The demo's story in miniature, written by each package's own functions: traffic, a drift run that
    opens an alert, oracle labels, and a canary comparison computed by the rollout controller's code."""
    from shiftwatch.labeling.oracle import label_with_oracle
    from shiftwatch.labeling.policy import Budget, select_for_labeling
    from shiftwatch.rollout.comparisons import compare_canary
    from shiftwatch.rollout.schemas import RolloutPlan
    from shiftwatch.rollout.tables import Comparison, Rollout

    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        v1 = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production")
        v2 = registry.register_version(session, "digits", "v2", embedding_dim=64, state="canary")
        v1_id, v2_id, model_id = v1.id, v2.id, v1.model_id
    open_drift_alert(db, settings, v1_id)
    with db.session() as session:
        select_for_labeling(session, "digits", Budget.of(settings, "digits", 40), start=utcnow() - timedelta(hours=2), seed=0)
        assert label_with_oracle(session, "digits", lambda ref: 3) > 0
    step_start = utcnow() - timedelta(minutes=10)
    store_predictions(db, settings, predictions("v1", 100, seed=2, minutes_ago=9))
    store_predictions(db, settings, predictions("v2", 100, route="canary", seed=3, minutes_ago=9))
    with db.session() as session:
        plan = RolloutPlan()
        rollout = Rollout(model_id=model_id, candidate_version_id=v2_id, baseline_version_id=v1_id, state="canary",
                          stage_started_at=step_start, step_started_at=step_start, plan=plan.model_dump(),
                          last_decision={}, created_by="test")
        session.add(rollout)
        session.flush()
        now = utcnow()
        metrics = compare_canary(session, rollout, plan, now, lambda s, refs: {ref: 3 for ref in refs})
        session.add(Comparison(rollout_id=rollout.id, stage="canary", step=0, computed_at=now, decision="hold",
                               metrics=metrics))
