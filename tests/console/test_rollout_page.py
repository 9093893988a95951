"""The rollout page over real HTTP: the candidate's report rendered, Approve only when the controller allows it,
and the state the controller holds after a decision."""

from __future__ import annotations

import re

from sqlalchemy import select

from shiftwatch.collector.tables import ModelVersion
from shiftwatch.rollout import controller
from shiftwatch.rollout.schemas import RolloutPlan
from tests.support.rollout import add_version

# The shape retrain registers (retrain/candidate.py, retrain/pipeline.py), numbers from a real run.
RETRAIN_REPORT = {
    "size_bytes": 68_608,
    "size_bytes_fp32_onnx": 900_096,
    "latency_ms": {"batch1": {"p50_ms": 0.032, "p99_ms": 0.051}, "batch32": {"p50_ms": 0.58, "p99_ms": 0.71}},
    "compression_steps": ["distill", "prune", "ptq"],
    "compression": {"quantization": {
        "attempts": [{"recipe": "ptq", "accuracy_drop": 0.0125, "top1_agreement": 0.9611, "parity_ok": False},
                     {"recipe": "qat+ptq", "accuracy_drop": 0.0028, "top1_agreement": 0.9926, "parity_ok": True}],
        "outcome": "int8 from qat+ptq"}},
    "parity": {"samples": 360, "max_abs_logit_diff": 0.0004, "max_abs_logit": 12.0, "top1_agreement": 1.0,
               "atol": 0.001, "min_agreement": 1.0, "ok": True},
    "accuracy_old": 0.975, "accuracy_new": 0.93,
    "gate": {"passed": True, "accuracy_old": {"production": 0.9722, "candidate": 0.975},
             "accuracy_new": {"production": 0.61, "candidate": 0.93}, "reasons": []},
}


def start(db, settings, plan: RolloutPlan) -> int:
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2")
    with db.session() as session:
        session.scalar(select(ModelVersion).where(ModelVersion.version == "v2")).report = RETRAIN_REPORT
    with db.session() as session:
        return controller.start_rollout(session, settings.data_dir, "digits", "v2", plan, actor="alice").id


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_candidate_report_is_rendered_not_dumped(api, db, settings) -> None:
    rollout_id = start(db, settings, RolloutPlan())
    page = api.get(f"/console/rollouts/{rollout_id}")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "production 97.22%, candidate 97.50% (+0.28 points)" in text
    assert "production 61.00%, candidate 93.00% (+32.00 points)" in text
    assert "67 KB (fp32 ONNX 879 KB)" in text and "distill, prune, ptq" in text
    assert "latency batch1 (1 CPU thread) p50 0.032 ms, p99 0.051 ms" in text
    assert "qat+ptq 0.28 0.9926 ok" in text and "ptq 1.25 0.9611 missed" in text
    assert "Outcome: int8 from qat+ptq" in text and "evaluation gate passed" in text
    assert "<details><summary>Raw report (JSON)" in page.text  # the JSON is still there, folded


def test_approve_is_not_offered_while_the_controller_holds(api, db, settings) -> None:
    rollout_id = start(db, settings, RolloutPlan(canary_steps=[1.0], min_shadow_pairs=1))
    with db.session() as session:
        rollout = controller.get_rollout(session, rollout_id)
        rollout.state, rollout.last_decision = "canary", {"decision": "hold", "reasons": ["final step: accuracy evidence insufficient"]}
    text = text_of(api.get(f"/console/rollouts/{rollout_id}").text)
    assert "canary: controller says hold" in text and "final step: accuracy evidence insufficient" in text
    assert 'class="approve"' not in api.get(f"/console/rollouts/{rollout_id}").text
    assert f"shiftwatch rollout approve {rollout_id} --force --reason" in text
    assert "Reject" in text


def test_a_rejected_rollout_shows_the_rejection_not_the_last_tick(api, db, settings) -> None:
    rollout_id = start(db, settings, RolloutPlan())
    with db.session() as session:
        controller.get_rollout(session, rollout_id).last_decision = {"decision": "await_approval", "reasons": ["x"]}
    response = api.post(f"/v1/rollouts/{rollout_id}/reject", json={"reason": "trained on the wrong split"})
    assert response.status_code == 200
    text = text_of(api.get(f"/console/rollouts/{rollout_id}").text)
    assert re.search(r"rejected: rejected by \S+ at [\d-]+ [\d:]+: trained on the wrong split", text), text[:600]
    assert "await_approval" not in text and 'class="reject"' not in api.get(f"/console/rollouts/{rollout_id}").text
    listed = text_of(api.get("/console/rollouts").text)  # the list says the same, not the last tick's decision
    assert "rejected: rejected by" in listed and "await_approval" not in listed
