"""The audit slice: a uniform sample of every route carrying traffic, queued by the scheduled job, within one budget."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import select

from shiftwatch.collector import registry
from shiftwatch.collector.queries import window
from shiftwatch.labeling.audit import TrafficRoute, audit_sample, shares
from shiftwatch.labeling.job import run_labeling_cycle
from shiftwatch.labeling.policy import Budget, select_for_labeling
from shiftwatch.labeling.queue import queue_status
from shiftwatch.labeling.sync import push
from shiftwatch.labeling.tables import LabelTask
from shiftwatch_client.records import PredictionRecord
from tests.support.collector import store_predictions
from tests.support.labeling import DATA, ReplayServer, fake_ref, probs_with_margin

API = json.loads((DATA / "labelstudio_api.json").read_text())["exchanges"]

NOW = datetime.now(UTC)


def _log(db, settings, version: str, route: str, n: int, margin: float = 0.1, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ts = NOW - timedelta(minutes=2)
    store_predictions(db, settings, [
        PredictionRecord(model="digits", version=version, route=route, predicted_class=i % 10,
                         confidence=float((1 + margin) / 2), probabilities=probs_with_margin(i % 10, margin),
                         embedding=rng.normal(size=64).astype(np.float32), input_ref=fake_ref(f"{version}{route}{i}"),
                         request_id=f"{route}-{i}", ts=ts + timedelta(milliseconds=i))
        for i in range(n)
    ])


def _audit_by_route(db) -> Counter:
    with db.session() as session:
        tasks = session.scalars(select(LabelTask).where(LabelTask.reason == "random"))
        return Counter(t.evidence["route"] for t in tasks)


def test_the_scheduled_job_audits_every_route_with_traffic_and_keeps_the_audit_share_of_the_day(db, settings, digits_model):
    with db.session() as session:
        registry.register_version(session, "digits", "v2", embedding_dim=64, state="canary")
    _log(db, settings, "v1", "production", 200)  # all uncertain: the informative picks would take everything
    _log(db, settings, "v2", "canary", 60)
    _log(db, settings, "v2", "shadow", 60)
    settings = settings.model_copy(update={"labeling_daily_budget": 60, "labeling_batch_size": 20,
                                           "labeling_audit_per_route": 2, "labeling_sync_interval_s": 600})
    for _ in range(6):  # the day's budget is spent after five runs: 60 tasks
        run_labeling_cycle(db, settings, NOW)
    audited = _audit_by_route(db)
    with db.session() as session:
        status = queue_status(session, "digits", Budget.of(settings, "digits").daily)
    assert status.queued_today == 60
    # Half of each day's budget is the audit's: uncertain picks (14 a run at first) stop at 30, the audit
    # slice (2 per route a run) takes the rest, late runs included.
    assert status.by_reason["uncertain"] == 30 and sum(audited.values()) == 30
    assert set(audited) == {"production", "canary", "shadow"} and min(audited.values()) >= 8


def test_without_a_rollout_the_informative_picks_may_use_the_whole_day(db, settings, digits_model):
    _log(db, settings, "v1", "production", 100)
    settings = settings.model_copy(update={"labeling_daily_budget": 40, "labeling_batch_size": 40,
                                           "labeling_audit_per_route": 4, "labeling_sync_interval_s": 600})
    run_labeling_cycle(db, settings, NOW)
    with db.session() as session:
        status = queue_status(session, "digits", Budget.of(settings, "digits").daily)
    assert status.by_reason == {"random": 4, "uncertain": 36}


def test_the_audit_slice_is_a_uniform_sample_of_its_route(db, settings, digits_model):
    """Over 400 seeded draws of 5 from 40 canary predictions, each is drawn about 5/40 of the time."""
    with db.session() as session:
        version = registry.register_version(session, "digits", "v2", embedding_dim=64, state="canary")
        route = TrafficRoute(version.id, "v2", "canary")
    _log(db, settings, "v2", "canary", 40)
    _log(db, settings, "v1", "production", 40)
    with db.session() as session:
        win = window(session, route.version_id, route="canary")
        drawn = Counter(c.prediction_id for seed in range(400)
                        for c in audit_sample(session, route, win, 5, np.random.default_rng(seed)))
    assert len(drawn) == 40 and sum(drawn.values()) == 400 * 5
    assert min(drawn.values()) >= 25 and max(drawn.values()) <= 80  # expected 50 each


def test_audit_tasks_reach_label_studio_marked_as_audit_samples_of_their_route(db, settings):
    """Pushed against the recorded Label Studio 1.23.2 traffic (tests/data/labelstudio_api.json): three tasks."""
    with db.session() as session:
        registry.register_model(session, "recorded", [str(i) for i in range(10)])
        registry.register_version(session, "recorded", "v1", embedding_dim=64, state="production")
        registry.register_version(session, "recorded", "v2", embedding_dim=64, state="canary")
    rng = np.random.default_rng(3)
    store_predictions(db, settings, [
        PredictionRecord(model="recorded", version="v2", route="canary", predicted_class=1, confidence=0.9,
                         embedding=rng.normal(size=64).astype(np.float32), input_ref=fake_ref(i), ts=NOW - timedelta(minutes=1))
        for i in range(3)
    ])
    with db.session() as session:
        result = select_for_labeling(session, "recorded", Budget.of(settings, "recorded"), start=NOW - timedelta(hours=1), seed=0)
    assert result.by_reason == {"random": 3}
    with ReplayServer(API[:6]) as studio:
        pushed = push(db, settings.model_copy(update={"label_studio_url": studio.url, "label_studio_token": "t"}), "recorded")
    assert (pushed.sent, pushed.error) == (3, None)
    imported = next(body for _, path, body in studio.calls if path.endswith("/import"))
    assert [(t["data"]["reason"], t["data"]["route"]) for t in imported] == [("audit", "canary")] * 3


def test_a_short_budget_is_shared_evenly_among_the_routes():
    assert shares(30, 3, 10) == [10, 10, 10]
    assert shares(25, 3, 10) == [9, 8, 8]
    assert shares(0, 2, 10) == [0, 0]
