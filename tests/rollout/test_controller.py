"""The rollout controller end to end: state machine, shadow -> canary -> approval, automatic rollback, restarts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shiftwatch.app import create_app
from shiftwatch.collector import registry
from shiftwatch.collector.tables import Prediction
from shiftwatch.db import Database, utcnow
from shiftwatch.errors import Conflict, Invalid
from shiftwatch.labeling.tables import Label, LabelTask
from shiftwatch.rollout import controller
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.rollout.tables import AuditLog, Rollout
from tests.support.rollout import add_version, png_image, post_and_drain

FAST_PLAN = RolloutPlan(canary_steps=[0.5, 1.0], min_shadow_pairs=20, min_step_predictions=10, require_labels=False)


def send(api, n: int, offset: int = 0) -> list[dict]:
    """n predictions from n different clients, then wait until shadow copies and logs are written."""
    ids = range(offset, offset + n)
    return post_and_drain(api, "digits", [png_image(i) for i in ids], [{"x-client-key": f"client-{i}"} for i in ids])


def start(db, settings, version: str = "v2", plan: RolloutPlan = FAST_PLAN) -> int:
    with db.session() as session:
        return controller.start_rollout(session, settings.data_dir, "digits", version, plan, actor="alice").id


def state_of(db, rollout_id: int) -> Rollout:
    with db.session() as session:
        return controller.get_rollout(session, rollout_id)


def audit_actions(db, rollout_id: int) -> list[tuple[str, str, bool]]:
    with db.session() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.rollout_id == rollout_id).order_by(AuditLog.id))
        return [(a.action, a.actor, a.forced) for a in rows]


def test_only_listed_transitions_are_allowed(db, settings):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", seed=1)
    rollout_id = start(db, settings)
    with db.session() as session:
        rollout = controller.get_rollout(session, rollout_id)
        with pytest.raises(Conflict):
            controller.transition(session, rollout, "production", actor="x", action="skip", reason="no")
        controller.transition(session, rollout, "canary", actor="x", action="start_canary", reason="ok")
        controller.transition(session, rollout, "rolled_back", actor="x", action="auto_rollback", reason="ok")
        with pytest.raises(Conflict):
            controller.transition(session, rollout, "shadow", actor="x", action="again", reason="no")
    assert [a for a, _, _ in audit_actions(db, rollout_id)] == ["create", "start_shadow", "start_canary", "auto_rollback"]
    with db.session() as session:
        assert registry.get_version(session, "digits", "v2").state == "rolled_back"


def test_start_is_refused_without_production_twice_or_for_a_non_candidate(db, settings):
    add_version(db, settings, "v2", seed=1)
    with pytest.raises(Conflict, match="no production"):
        start(db, settings)
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v3", seed=3)
    start(db, settings)
    with pytest.raises(Conflict, match="still shadow"):
        start(db, settings, "v3")
    with pytest.raises(Conflict, match="only a candidate"):
        start(db, settings, "v1")


def test_start_refuses_a_candidate_whose_sha256_does_not_match(db, settings):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", seed=1, sha256="ab" * 32)
    with pytest.raises(Conflict, match="sha256"):
        start(db, settings)
    with db.session() as session:
        assert session.scalar(select(Rollout)) is None


def test_broken_candidate_is_rolled_back_automatically(db, settings, api):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", broken=True)
    rollout_id = start(db, settings)
    api.app.state.gateway.refresh("digits")
    send(api, 40)
    (outcome,) = controller.tick(db)
    assert (outcome.state_before, outcome.state_after, outcome.decision) == ("shadow", "rolled_back", "rollback")
    assert any("confidence" in r or "agreement" in r for r in outcome.reasons)
    assert audit_actions(db, rollout_id)[-1] == ("auto_rollback", "controller", False)
    standing = api.get(f"/v1/rollouts/{rollout_id}").json()["standing"]
    assert standing.startswith("rolled_back: rolled back on a guardrail by controller at ") and outcome.reasons[0] in standing
    # The gateway stops mirroring to it at its next refresh.
    assert api.app.state.gateway.refresh("digits").candidate is None


def test_failing_canary_answers_fall_back_to_production_and_the_error_rate_rolls_it_back(db, settings, api):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", side=28)  # every ORT call on a 32x32 input fails
    rollout_id = start(db, settings, plan=FAST_PLAN.model_copy(update={"canary_steps": [1.0]}))
    with db.session() as session:
        controller.transition(session, controller.get_rollout(session, rollout_id), "canary", actor="controller",
                              action="start_canary", reason="test")
    api.app.state.gateway.refresh("digits")
    answers = send(api, 20)
    assert {(a["route"], a["version"]) for a in answers} == {("production", "v1")}  # clients never saw the failure
    (outcome,) = controller.tick(db)
    assert outcome.state_after == "rolled_back" and "error rate 20/20" in outcome.reasons[0]


def test_good_candidate_goes_through_shadow_and_canary_then_waits_for_approval(db, settings, api):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")  # same weights as v1: an equal candidate
    rollout_id = start(db, settings)
    gateway = api.app.state.gateway
    gateway.refresh("digits")
    shadowed = send(api, 30)
    assert all(b["route"] == "production" for b in shadowed)
    assert [o.decision for o in controller.tick(db)] == ["advance"]
    assert state_of(db, rollout_id).state == "canary"
    for step, expected in enumerate(["advance", "await_approval"]):
        gateway.refresh("digits")
        routes = {b["route"] for b in send(api, 60, offset=100 * (step + 1))}
        assert "canary" in routes
        assert [o.decision for o in controller.tick(db)] == [expected]
    # No labels (require_labels=false): the accuracy test is undecided, so approving needs a reason.
    no_reason = api.post(f"/v1/rollouts/{rollout_id}/approve", json={})
    assert no_reason.status_code == 422 and "accuracy test is undecided" in no_reason.json()["detail"]
    assert state_of(db, rollout_id).state == "canary"  # nothing half-done
    response = api.post(f"/v1/rollouts/{rollout_id}/approve", json={"reason": "no labels for this camera yet"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "production"
    assert (body["audit"][-1]["reason"], body["audit"][-1]["evidence"]["accuracy_decision"]) == (
        "no labels for this camera yet", "undecided")
    assert body["standing"].startswith("production: approved by ") and "no labels for this camera yet" in body["standing"]
    assert "await_approval" not in body["standing"]
    gateway.refresh("digits")
    assert send(api, 1, offset=999)[0]["version"] == "v2"
    actions = [a for a, _, _ in audit_actions(db, rollout_id)]
    assert actions == ["create", "start_shadow", "start_canary", "advance_step", "ready_for_approval", "approve"]
    with db.session() as session:
        assert registry.get_version(session, "digits", "v1").state == "retired"


def test_approval_is_refused_with_too_few_labeled_samples_unless_forced_with_a_reason(db, settings, api):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    plan = FAST_PLAN.model_copy(update={"require_labels": True, "canary_steps": [1.0]})
    rollout_id = start(db, settings, plan=plan)
    api.app.state.gateway.refresh("digits")
    send(api, 30)
    controller.tick(db)
    api.app.state.gateway.refresh("digits")
    send(api, 20, offset=100)
    assert [o.decision for o in controller.tick(db)] == ["hold"]
    refused = api.post(f"/v1/rollouts/{rollout_id}/approve", json={})
    assert refused.status_code == 409 and "labeled samples" in refused.json()["detail"]
    no_reason = api.post(f"/v1/rollouts/{rollout_id}/approve", json={"force": True})
    assert no_reason.status_code == 422
    forced = api.post(f"/v1/rollouts/{rollout_id}/approve", json={"force": True, "reason": "hotfix, labels lag"})
    assert forced.status_code == 200 and forced.json()["state"] == "production"
    last = forced.json()["audit"][-1]
    assert (last["action"], last["forced"], last["reason"]) == ("approve", True, "hotfix, labels lag")
    assert last["evidence"]["metrics"]["accuracy"]["n_candidate"] == 0


def test_reject_needs_a_reason_and_ends_the_rollout(db, settings, api):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    rollout_id = start(db, settings)
    assert api.post(f"/v1/rollouts/{rollout_id}/reject", json={}).status_code == 422
    response = api.post(f"/v1/rollouts/{rollout_id}/reject", json={"reason": "wrong training data"})
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    assert api.post(f"/v1/rollouts/{rollout_id}/approve", json={}).status_code == 409
    with pytest.raises(Invalid), db.session() as session:
        controller.approve(session, rollout_id, actor="x", force=True, reason=" ")


def test_restart_mid_canary_resumes_from_the_database(db_url, db, settings):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    rollout_id = start(db, settings)
    with db.session() as session:
        rollout = controller.get_rollout(session, rollout_id)
        controller.transition(session, rollout, "canary", actor="controller", action="start_canary", reason="test")

    # A new process: new Database, new app, new gateway; nothing carried over in memory.
    from fastapi.testclient import TestClient

    fresh_db = Database.connect(db_url)
    try:
        with TestClient(create_app(settings, fresh_db)) as api:
            table = api.app.state.gateway.refresh("digits")
            assert (table.stage, table.share, table.rollout_id) == ("canary", 0.5, rollout_id)
            send(api, 60, offset=500)
            assert [o.decision for o in controller.tick(fresh_db)] == ["advance"]
            assert state_of(fresh_db, rollout_id).step == 1
            assert api.app.state.gateway.refresh("digits").share == 1.0
    finally:
        fresh_db.dispose()


@pytest.mark.slow  # the first Evidently report imports and renders for seconds
def test_shadow_pairs_by_request_id_and_hands_each_disagreement_over_once(db, settings, api):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", noise=3.0)  # a different head: disagrees on part of the inputs
    plan = FAST_PLAN.model_copy(update={"min_agreement": 0.0, "min_shadow_pairs": 1000, "max_confidence_drop": 1.0})
    rollout_id = start(db, settings, plan=plan)
    api.app.state.gateway.refresh("digits")
    answers = send(api, 30)
    controller.tick(db)
    shown = api.get(f"/v1/rollouts/{rollout_id}").json()
    agreement = shown["latest_comparison"]["metrics"]["agreement"]
    assert agreement["n_pairs"] == 30 and 0 < agreement["agree"] < 30
    interval = agreement["interval"]  # exact: inside (0, 1), around the observed rate
    assert 0 < interval["low"] < agreement["rate"] < interval["high"] < 1 and interval["method"] == "clopper_pearson"
    differences = shown["latest_comparison"]["metrics"]["differences"]
    assert differences["accuracy"] is None  # no labels yet: no interval, rather than a made-up one
    latency = differences["latency_p99_ms"]
    assert latency["low"] <= latency["high"] and latency["method"] == "bootstrap"  # real timings: only the order is fixed
    assert shown["last_decision"]["disagreements_queued"] == 30 - agreement["agree"]
    assert {b["request_id"] for b in answers}  # every production answer carried the id its shadow copy reused
    with db.session() as session:
        tasks = list(session.scalars(select(LabelTask)))
    assert len(tasks) == 30 - agreement["agree"] and {t.reason for t in tasks} == {"disagreement"}
    assert all(t.evidence["production_class"] != t.evidence["candidate_class"] for t in tasks)
    controller.tick(db)
    assert api.get(f"/v1/rollouts/{rollout_id}").json()["last_decision"]["disagreements_queued"] == 30 - agreement["agree"]
    report = api.get(f"/v1/rollouts/{rollout_id}/report")
    assert report.status_code == 200 and "confidence" in report.text
    assert "not an alarm" in report.text and "Dataset Drift is detected" not in report.text
    assert (settings.data_dir / "reports" / f"rollout-{rollout_id}.html").is_file()


def test_accuracy_pairs_use_only_labels_from_the_random_slice(db, settings, api):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    plan = FAST_PLAN.model_copy(update={"min_shadow_pairs": 1000})
    rollout_id = start(db, settings, plan=plan)
    api.app.state.gateway.refresh("digits")
    send(api, 40)
    with db.session() as session:
        rows = list(session.scalars(select(Prediction).where(Prediction.route == "production")))
        for i, row in enumerate(rows):
            task = LabelTask(prediction_id=row.id, ts=row.ts, model_version_id=row.model_version_id,
                             input_ref=row.input_ref, predicted_class=row.predicted_class, confidence=row.confidence,
                             reason="random" if i < 35 else "uncertain", priority=1.0, evidence={}, state="labeled")
            session.add(task)
            session.flush()
            session.add(Label(task_id=task.id, prediction_id=row.id, model_version_id=row.model_version_id,
                              label=row.predicted_class, annotator="oracle", labeled_at=utcnow(), source="oracle"))
    controller.tick(db)
    accuracy = api.get(f"/v1/rollouts/{rollout_id}").json()["latest_comparison"]["metrics"]["accuracy"]
    assert (accuracy["n_candidate"], accuracy["n_production"]) == (35, 35)
    assert accuracy["accuracy_candidate"] == accuracy["accuracy_production"] == 1.0
