"""Acts 5-9 of the demo: the loop that answers a drift. Detect, label, retrain, roll out, approve.

Each act calls the owning package's own functions (the same ones its scheduler job, API and
CLI call), returns what the next act needs (or False/None when the story cannot go on), and says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.queries import window
from shiftwatch.db import utcnow
from shiftwatch.demo.acts import describe_artifact, stream, wait_until_stored
from shiftwatch.demo.stage import Service, Stage
from shiftwatch.detectors import alerts, runs, webhooks
from shiftwatch.detectors.tables import DriftRun
from shiftwatch.labeling.oracle import label_with_oracle
from shiftwatch.labeling.policy import Budget, enqueue, select_for_labeling
from shiftwatch.labeling.queue import queue_status
from shiftwatch.labeling.studio_links import links_note
from shiftwatch.labeling.sync import push
from shiftwatch.retrain.export import ParityError
from shiftwatch.retrain.labeled import labeled_data
from shiftwatch.retrain.training import LabeledData, MixPolicy
from shiftwatch.rollout import controller
from shiftwatch.rollout.schemas import RolloutPlan

if TYPE_CHECKING:  # retrain.pipeline imports torch, which only the `train` extra installs
    from shiftwatch.retrain.pipeline import RetrainOutcome

# The detector runs once a second in the demo (every few minutes in `shiftwatch serve`).
MAX_DETECTOR_RUNS = 6
# How long the demo waits for a person to press Approve or Reject in the console.
APPROVAL_TIMEOUT_S = 30 * 60


@dataclass(frozen=True, slots=True)
class RolloutResult:
    """What act 8 leaves: the rollout (the summary plots it) and whether it reached the approval step."""

    rollout_id: int
    awaiting_approval: bool


def detect(stage: Stage, service: Service) -> bool:
    """Act 5: the scheduled detector compares recent traffic with v1's reference and opens an alert."""
    wait_until_stored(stage, service.traffic)
    for attempt in range(1, MAX_DETECTOR_RUNS + 1):
        report = runs.run_due_detectors(stage.db, stage.settings, utcnow())
        with stage.db.session() as session:
            latest = runs_latest(session)
        stage.say(f"detector run {attempt}: statistic {latest['statistic']}, p-value {latest['p_value']}, "
                  f"drift decision {latest['decision']}")
        if report.opened:
            break
        # A confirming run must test new samples (a re-test of the same window proves nothing, and
        # the scheduler skips it): one more window of drifted traffic before the next tick.
        stream(stage, service, stage.scale.detector_window, "drift", "more drifted traffic, for a confirming run")
        wait_until_stored(stage, service.traffic)
        time.sleep(stage.settings.detector_tick_seconds + 0.1)  # the next tick
    else:
        stage.say("[red]No alert opened[/]: the detector did not confirm the drift.")
        return False
    alert_id = report.opened[0]
    with stage.db.session() as session:
        alert = alerts.to_out(session, stage.settings.public_url, alerts.get(session, alert_id))
    stage.timeline.mark("alert opened")
    stage.facts["alert"] = f"#{alert.id} {alert.severity}: {alert.title}"
    stage.say(f"[bold red]ALERT #{alert.id}[/] ({alert.severity}): {alert.title}")
    if alert.report_url:
        stage.say(f"Evidently drift report: [cyan]{service.api_url}/console/alerts/{alert.id}[/]")
    webhooks.deliver_due(stage.db, alerts.Outbox.of(stage.settings).endpoints, utcnow())
    deliveries = stage.receiver.wait_for(1, timeout_s=10)
    for delivery in deliveries:
        signed = {True: "signature valid", False: "SIGNATURE INVALID", None: "unsigned"}[delivery.signature_valid]
        body = delivery.body.get("alert", delivery.body)
        stage.say(f"Webhook received on loopback ({signed}): {body.get('title', delivery.body)!s:.120}")
    stage.facts["webhooks_received"] = len(deliveries)
    return True


def runs_latest(session: Session) -> dict[str, str]:
    """The newest drift run, formatted for one line of narrative."""
    run = session.scalar(select(DriftRun).order_by(DriftRun.id.desc()).limit(1))
    if run is None:
        return {"statistic": "-", "p_value": "-", "decision": "-"}
    return {
        "statistic": "-" if run.statistic is None else f"{run.statistic:.4f}",
        "p_value": "-" if run.p_value is None else f"{run.p_value:.3g}",
        "decision": "drift" if run.decision else ("no drift" if run.status == "ok" else (run.note or "-")),
    }


def label(stage: Stage, service: Service, drift_started_at: datetime) -> bool:
    """Act 6: queue the flagged and uncertain samples, and label them (Label Studio, or the built-in oracle)."""
    with stage.db.session() as session:
        budget = Budget.of(stage.settings, stage.model, stage.scale.labels // 2)
        result = select_for_labeling(session, stage.model, budget, start=drift_started_at, seed=0)
        audit = queue_audit_sample(session, stage.model, drift_started_at, stage.scale.labels // 2)
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(result.by_reason.items()))
    stage.say(f"Queued {result.queued} samples by the labeling policy ({reasons}) and an audit sample of {audit} "
              "drawn uniformly at random: only uniformly drawn labels may judge the canary's accuracy (unbiased).")
    if stage.settings.label_studio_url:
        push_to_label_studio(stage, service.api_url)
    else:
        stage.say("[yellow]Label Studio is not configured[/] (SHIFTWATCH_LABEL_STUDIO_URL): the [bold]built-in oracle[/] "
                  "labels the queue from the demo's ground truth. Its labels are marked source=oracle.")
    truth = service.traffic.truth_by_input
    with stage.db.session() as session:
        labeled = label_with_oracle(session, stage.model, lambda ref: truth[ref], annotator="oracle")
        status = queue_status(session, stage.model, budget.daily)
    if stage.settings.label_studio_url:
        close_in_label_studio(stage)
    stage.timeline.mark("labeled")
    stage.facts["labels_stored"] = status.labels
    stage.say(f"{labeled} samples labeled; {status.labels} labels stored for {stage.model}.")
    return status.labels > 0


def queue_audit_sample(session: Session, model: str, drift_started_at: datetime, size: int) -> int:
    """Queue ``size`` of the drifted production predictions, drawn uniformly, with reason ``random``."""
    version = registry.versions_in_state(session, model, "production")[-1]
    recent = window(session, version.id, start=drift_started_at, route="production")
    picks = np.random.default_rng(1).choice(len(recent), size=min(size, len(recent)), replace=False)
    return enqueue(session, version.id, [recent.ids[i] for i in picks], "random").queued


def push_to_label_studio(stage: Stage, api_url: str) -> None:
    """With Label Studio configured, tasks really go there (people label them; the oracle fills in for the demo)."""
    result = push(stage.db, stage.settings, stage.model)
    where = stage.settings.label_studio_url
    if result.error:
        stage.say(f"[yellow]Label Studio push failed[/] ({result.error}); tasks stay queued and are retried.")
    else:
        stage.say(f"Pushed {result.sent} tasks to Label Studio at [cyan]{where}[/] (project {result.project_id}, "
                  "'By priority' tab). The demo does not wait for people: the [bold]built-in oracle[/] labels "
                  "them, marked source=oracle.")
    stage.say(links_note(stage.settings, api_url))


def close_in_label_studio(stage: Stage) -> None:
    """The oracle's labels go to Label Studio as annotations, so no task it answered is left open there."""
    result = push(stage.db, stage.settings, stage.model)
    if result.error:
        stage.say(f"[yellow]Sending the oracle's labels to Label Studio failed[/] ({result.error}); "
                  "the next push sends them.")
    else:
        stage.say(f"Sent the oracle's {result.closed} labels to Label Studio as annotations: those tasks show as "
                  "completed there (a person's correction replaces the oracle's label).")


def retrain(stage: Stage) -> str | None:
    """Act 7: fine-tune production on reference + labeled data, compress, gate, register a candidate; its version."""
    # retrain's pipeline imports torch (the `train` extra), which act 2 checked for.
    from shiftwatch.retrain.pipeline import production_base

    with stage.db.session() as session:
        base, _ = production_base(session, stage.settings.data_dir, stage.model)
        labeled = labeled_data(session, stage.settings.data_dir, stage.model)
    stage.say(f"Fine-tuning {base.version} on {stage.subject.reference_data} plus {len(labeled)} labeled production samples; "
              f"compressing ({', '.join(stage.scale.compress_steps) or 'none'}); the gate compares old and new "
              "held-out accuracy.")
    outcome = build_candidate(stage, labeled, stage.scale.compress_steps)
    report = outcome.report
    if outcome.status != "succeeded":
        stage.say(f"[red]The gate rejected the candidate[/]: {'; '.join(outcome.gate.reasons) if outcome.gate else ''}")
        return None
    stage.timeline.mark(f"candidate {outcome.version}")
    stage.facts["candidate"] = f"{outcome.version}: {describe_artifact(report)}"
    stage.facts["candidate_accuracy_reference_vs_drifted"] = (
        f"{report.get('accuracy_old', float('nan')):.1%} / {report.get('accuracy_new', float('nan')):.1%}")
    stage.say(f"Registered candidate [bold]{stage.model} {outcome.version}[/]: accuracy on {stage.subject.reference_data} "
              f"{report.get('accuracy_old', float('nan')):.1%}, on held-out labeled production samples "
              f"{report.get('accuracy_new', float('nan')):.1%}; {describe_artifact(report)}")
    return outcome.version


def build_candidate(stage: Stage, labeled: LabeledData, steps: tuple[str, ...]) -> RetrainOutcome:
    """Run retrain's pipeline; if the int8 artifact fails its parity check, say so and ship fp32 instead."""
    from shiftwatch.retrain.compress import CompressConfig  # torch, as above
    from shiftwatch.retrain.pipeline import RetrainConfig
    from shiftwatch.retrain.pipeline import retrain as retrain_candidate
    from shiftwatch.retrain.prune import PruneConfig
    from shiftwatch.retrain.reference_model import TrainConfig

    config = RetrainConfig(finetune=TrainConfig(epochs=stage.scale.finetune_epochs, lr=stage.scale.finetune_lr),
                           mix=MixPolicy(production_share=stage.scale.production_share),
                           compress=CompressConfig(steps=steps, prune=PruneConfig(finetune_epochs=stage.scale.prune_finetune_epochs)))
    try:
        with stage.progress() as progress:
            return retrain_candidate(stage.db, stage.settings.data_dir, stage.model, labeled, config,
                                     progress=stage.step_bars(progress))
    except ParityError as exc:
        if not steps:
            raise
        stage.say(f"[yellow]Compression refused[/]: {exc.message}. Retraining without compression (fp32).")
        stage.facts["compression_refused"] = exc.message
        return build_candidate(stage, labeled, ())


def roll_out(stage: Stage, service: Service, candidate: str) -> RolloutResult:
    """Act 8: shadow (mirror and compare), then canary steps, judged by the rollout controller's guardrails."""
    # Smaller steps than production defaults so a few thousand requests show every stage. The
    # agreement guardrail is off: production is the model the open alert says is wrong, so a
    # better candidate must disagree with it; the accuracy SPRT on labeled samples judges instead.
    # The latency budget is the subject's (see Subject.latency_budget_ms).
    plan = RolloutPlan(canary_steps=[0.25, 0.5], min_shadow_pairs=200, min_step_predictions=100, min_agreement=0.0,
                       latency_budget_ms=stage.subject.latency_budget_ms)
    with stage.db.session() as session:
        rollout_id = controller.start_rollout(session, stage.settings.data_dir, stage.model, candidate, plan,
                                              actor="shiftwatch demo").id
    stage.timeline.mark("shadow")
    stage.say(f"Rollout #{rollout_id}: {candidate} mirrors production traffic in [bold]shadow[/] "
              f"(needs {plan.min_shadow_pairs} paired requests), then takes canary shares "
              f"{', '.join(f'{s:.0%}' for s in plan.canary_steps)}.")
    time.sleep(stage.settings.gateway_refresh_seconds + 0.5)  # the gateway picks the rollout up
    last = {"state": "shadow", "decision": None}

    def tick() -> bool:
        wait_until_stored(stage, service.traffic)
        outcome = controller.tick(stage.db, utcnow())[0]
        if (outcome.state_after, outcome.decision) != (last["state"], last["decision"]):
            stage.say(f"  controller: {outcome.state_before} -> {outcome.state_after}, {outcome.decision}: {'; '.join(outcome.reasons)}")
            if outcome.state_after != last["state"]:
                stage.timeline.mark(outcome.state_after)
                time.sleep(stage.settings.gateway_refresh_seconds + 0.2)  # the gateway reads the new share
            last.update(state=outcome.state_after, decision=outcome.decision)
        return outcome.state_after not in ("shadow", "canary") or outcome.decision == "await_approval"

    stream(stage, service, stage.scale.rollout_requests, "rollout", "shadow + canary traffic", after_batch=tick)
    stage.facts["canary_requests_answered_by_candidate"] = stage.routes["canary"]
    if last["decision"] != "await_approval":
        stage.say(f"[red]The rollout ended as {last['state']} ({last['decision']})[/]; no promotion.")
        return RolloutResult(rollout_id, awaiting_approval=False)
    return RolloutResult(rollout_id, awaiting_approval=True)


def approve(stage: Stage, service: Service, rollout_id: int) -> bool:
    """Act 9: a person approves in the console (or --yes does), and the candidate becomes production."""
    url = f"{service.api_url}/console/rollouts/{rollout_id}"
    if stage.auto_approve:
        with stage.db.session() as session:
            controller.approve(session, rollout_id, actor="demo --yes", reason="auto-approved by shiftwatch demo --yes")
        stage.say(f"Approved automatically (--yes). A person would press Approve at [cyan]{url}[/].")
    else:
        stage.say(f"[bold]Waiting for approval:[/] open [cyan]{url}[/] (log in with the demo-operator token "
                  "printed in act 1) and press Approve or Reject.")
        if not wait_for_decision(stage, rollout_id):
            stage.say("[red]No promotion[/]: the candidate was not approved.")
            return False
    with stage.db.session() as session:
        production = registry.versions_in_state(session, stage.model, "production")[-1].version
    stage.timeline.mark(f"promoted {production}")
    stage.facts["promoted"] = production
    stage.say(f"[bold green]{stage.model} {production} is production.[/]")
    time.sleep(stage.settings.gateway_refresh_seconds + 0.5)  # the gateway swaps its route table
    return True


def wait_for_decision(stage: Stage, rollout_id: int) -> bool:
    """Poll the rollout until a person decides in the console; True when approved."""
    deadline = time.monotonic() + APPROVAL_TIMEOUT_S
    while time.monotonic() < deadline:
        with stage.db.session() as session:
            state = controller.get_rollout(session, rollout_id).state
        if state not in ("shadow", "canary"):
            return state == "production"
        time.sleep(1.0)
    return False
