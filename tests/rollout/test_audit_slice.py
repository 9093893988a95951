"""The audit slice gives a canary's accuracy test its labels: approval without --force, from the scheduled job alone."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shiftwatch.db import utcnow
from shiftwatch.labeling.job import run_labeling_cycle
from shiftwatch.labeling.tables import LabelTask
from shiftwatch.rollout import controller
from shiftwatch.rollout.guardrails import MIN_LABELED_PER_ARM
from shiftwatch.rollout.schemas import RolloutPlan
from tests.support.rollout import add_version, png_image, post_and_drain

# Labels required; a 10-point margin, so ~50 labels per arm decide a clearly better candidate. Latency is not
# what this judges: a generous budget keeps a busy test machine from rolling the candidate back.
PLAN = RolloutPlan(canary_steps=[0.5], min_shadow_pairs=20, min_step_predictions=10, require_labels=True,
                   accuracy_margin=0.1, latency_budget_ms=60_000)


def send(api, n: int, offset: int) -> list[dict]:
    ids = range(offset, offset + n)
    return post_and_drain(api, "digits", [png_image(i) for i in ids], [{"x-client-key": f"client-{i}"} for i in ids])


def test_a_canary_reaches_a_decided_accuracy_test_from_audit_labels_and_is_approved_without_force(db, settings, api):
    # 20 audit samples per route per run: the scheduled job alone queues them; four runs fit the daily budget.
    settings = settings.model_copy(update={"labeling_audit_per_route": 20, "labeling_batch_size": 100,
                                           "labeling_daily_budget": 400})
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")  # the same weights; the labels below make it the better model on its traffic
    with db.session() as session:
        rollout_id = controller.start_rollout(session, settings.data_dir, "digits", "v2", PLAN, actor="alice").id
    gateway = api.app.state.gateway
    gateway.refresh("digits")
    send(api, 20, offset=0)
    assert [o.decision for o in controller.tick(db)] == ["advance"]  # shadow -> canary
    gateway.refresh("digits")
    routes = [answer["route"] for answer in send(api, 300, offset=1000)]
    assert routes.count("canary") >= 100 and routes.count("production") >= 100
    (held,) = controller.tick(db)
    assert held.decision == "hold" and "SPRT is undecided" in held.reasons[0], held.reasons  # no labels yet
    for _ in range(4):
        run_labeling_cycle(db, settings, utcnow())
    with db.session() as session:
        tasks = list(session.scalars(select(LabelTask)))
        by_route = {}
        for task in tasks:
            if task.reason == "random":
                by_route[task.evidence["route"]] = by_route.get(task.evidence["route"], 0) + 1
    assert by_route["canary"] >= MIN_LABELED_PER_ARM and by_route["production"] >= MIN_LABELED_PER_ARM
    assert "shadow" in by_route  # every route that carried traffic in the window is audited
    # A person labels everything queued, through the import path: the candidate is right on its canary
    # predictions, production on every other of its own.
    labels = [
        {"prediction_id": str(t.prediction_id),
         "label": t.predicted_class if t.evidence.get("route") != "production" or i % 2 else (t.predicted_class + 1) % 10}
        for i, t in enumerate(tasks)
    ]
    assert api.post("/v1/labels", json={"model": "digits", "labels": labels}).status_code == 200
    (outcome,) = controller.tick(db)
    assert outcome.decision == "await_approval", outcome.reasons
    approved = api.post(f"/v1/rollouts/{rollout_id}/approve", json={})
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["state"] == "production" and body["audit"][-1]["forced"] is False
    accuracy = body["audit"][-1]["evidence"]["metrics"]["accuracy"]
    assert accuracy["decision"] == "not_worse" and accuracy["n_candidate"] >= MIN_LABELED_PER_ARM


@pytest.fixture
def small_budget(settings):
    """The server's settings and the controller's are one object, as in ``shiftwatch serve``."""
    settings.labeling_daily_budget = 5
    return settings


def test_shadow_disagreements_stay_within_the_one_daily_labeling_budget(db, small_budget, api):
    settings = small_budget
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", seed=1)  # other weights: most shadow pairs disagree
    plan = PLAN.model_copy(update={"min_shadow_pairs": 1000, "min_agreement": 0.0})
    with db.session() as session:
        controller.start_rollout(session, settings.data_dir, "digits", "v2", plan, actor="alice")
    api.app.state.gateway.refresh("digits")
    send(api, 40, offset=0)
    controller.tick(db, settings=settings)  # as the scheduler's rollout job calls it
    status = api.get("/v1/labeling/status", params={"model": "digits"}).json()
    assert status["by_reason"] == {"disagreement": 5}
    assert (status["queued_today"], status["budget_today"]) == (5, 5)  # the console's "5 / 5", never "40 / 5"
