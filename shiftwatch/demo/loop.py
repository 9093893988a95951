"""Acts 5-9 of the demo, once per lap: the loop that answers a drift. Detect, label, retrain, roll out, approve.

Each act asks the running server (HTTP) or runs a ``shiftwatch`` command (the CLI), exactly as a user
would; the server's own jobs (detectors, webhooks, the rollout controller) do the rest on their ticks.
Each act returns what the next needs (or False/None when the story cannot go on), and says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shiftwatch.demo import acts
from shiftwatch.demo.acts import describe_artifact, stream, wait_until_stored
from shiftwatch.demo.api import DemoApiError
from shiftwatch.demo.oracle import answer_queue, label_sample
from shiftwatch.demo.shell import CommandFailed
from shiftwatch.demo.stage import Service, Stage
from shiftwatch.labeling.studio_links import links_note

# Drifted windows the demo streams while it waits for the detector job to confirm the drift.
MAX_DETECTOR_WINDOWS = 6
# How long the demo waits for a person to press Approve or Reject in the console.
APPROVAL_TIMEOUT_S = 30 * 60
# The server's webhook job delivers every 10 s (detectors/schedule.py): wait a little longer.
WEBHOOK_WAIT_S = 25.0


@dataclass(frozen=True, slots=True)
class RolloutResult:
    """What act 8 leaves: the rollout (the summary links its report) and whether it reached the approval step."""

    rollout_id: int
    awaiting_approval: bool


def open_alerts(stage: Stage, version: str) -> list[dict[str, Any]]:
    return list(stage.api.get("/v1/alerts", model=stage.model, version=version, state="open"))


def detect(stage: Stage, service: Service, version: str) -> bool:
    """Act 5: the server's detector job compares recent traffic with the version's reference and opens an alert."""
    configs = stage.api.get("/v1/detector-configs", model=stage.model, version=version)
    stage.say(f"{stage.model} {version} is watched by {len(configs)} detector config(s): "
              + ", ".join(f"#{c['id']} {c['detector']}" for c in configs) + " (GET /v1/detector-configs).")
    delivered_before = len(stage.receiver.deliveries)
    alert: dict[str, Any] | None = None
    for attempt in range(1, MAX_DETECTOR_WINDOWS + 1):
        wait_until_stored(stage, service.traffic)
        time.sleep(stage.settings.detector_tick_seconds * 2 + 0.5)  # two ticks: a run on the newest window
        for config in configs:
            runs = stage.api.get(f"/v1/detector-configs/{config['id']}/runs", limit=1)
            if runs:
                stage.say(f"detector #{config['id']} ({config['detector']}), latest run: {describe_run(runs[0])}")
        found = open_alerts(stage, version)
        if found:
            alert = found[0]
            break
        if attempt < MAX_DETECTOR_WINDOWS:
            # A confirming run must test new samples (a re-test of the same window proves nothing, and the
            # scheduler skips it): one more window of drifted traffic.
            stream(stage, service, stage.scale.detector_window, stage.lap_phase("drift"),
                   "more drifted traffic, for a confirming run")
    if alert is None:
        stage.say("[red]No alert opened[/]: the detector did not confirm the drift.")
        return False
    stage.timeline.mark(stage.lap_label("alert opened"))
    stage.facts[stage.lap_key("alert")] = f"#{alert['id']} {alert['severity']}: {alert['title']}"
    stage.facts[stage.lap_key("alert_id")] = int(alert["id"])
    stage.say(f"[bold red]ALERT #{alert['id']}[/] ({alert['severity']}) on {version}: {alert['title']}")
    stage.say(f"Evidence and the Evidently drift report: [cyan]{alert['console_url']}[/]")
    harm_against_truth(stage, alert, "as it opened")
    deliveries = stage.receiver.wait_for(delivered_before + 1, timeout_s=WEBHOOK_WAIT_S)[delivered_before:]
    for delivery in deliveries:
        signed = {True: "signature valid", False: "SIGNATURE INVALID", None: "unsigned"}[delivery.signature_valid]
        body = delivery.body.get("alert", delivery.body)
        stage.say(f"Webhook received on loopback ({signed}): {body.get('title', delivery.body)!s:.120}")
    stage.facts["webhooks_received"] = int(stage.facts.get("webhooks_received", 0)) + len(deliveries)
    return True


def describe_run(run: dict[str, Any]) -> str:
    """One drift run for one line of narrative."""
    statistic = "-" if run["statistic"] is None else f"{run['statistic']:.4f}"
    p_value = "-" if run["p_value"] is None else f"{run['p_value']:.3g}"
    decision = "drift" if run["decision"] else ("no drift" if run["status"] == "ok" else (run["note"] or "-"))
    return f"statistic {statistic}, p-value {p_value}, decision {decision}"


# Random-slice labels the demo asks for each alert's window: an interval of about ±10 points at 50-90 % accuracy.
ALERT_AUDIT_LABELS = 100


def label(stage: Stage, service: Service, drift_started_at: datetime) -> bool:
    """Act 6: the labeling policy queues what changed (and its uniform audit slice); the labels come back as a file."""
    hours = (datetime.now(UTC) - drift_started_at).total_seconds() / 3600 + 1 / 60
    selected = stage.api.post("/v1/labeling/select", model=stage.model, hours=f"{hours:.4f}",
                              batch_size=stage.scale.labels)
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(selected["by_reason"].items()))
    stage.say(f"[bold]POST /v1/labeling/select[/] queued {selected['queued']} samples ({reasons}); "
              f"{selected['budget_left']} left in today's labeling budget. The 'random' ones are the audit slice: "
              "drawn uniformly, they are the only labels that may judge accuracy (unbiased).")
    alert_id = stage.facts.get(stage.lap_key("alert_id"))
    if alert_id is not None:
        audit_alert_window(stage, int(alert_id))
    if stage.settings.label_studio_url:
        push_to_label_studio(stage, service.api_url)
    else:
        stage.say("[yellow]Label Studio is not configured[/] (SHIFTWATCH_LABEL_STUDIO_URL): the [bold]built-in oracle[/] "
                  "answers the queue from the demo's ground truth, writes a labels file and imports it, as a labeling "
                  "team without Label Studio would. Its labels are marked annotator=oracle.")
    answered = answer_queue(stage, service.traffic)
    short = stage.scale.labels - answered.imported
    if short > stage.scale.labels // 4:
        production = stage.api.version_in(stage.model, "production") or "-"
        stage.say(f"The queue held {answered.imported} samples, fewer than the {stage.scale.labels} a fix needs: "
                  f"{production} is confidently wrong on the new traffic, so few samples look uncertain. The team also "
                  f"labels {short} of the drifted predictions drawn uniformly (GET /v1/predictions), through the same import.")
        label_sample(stage, service.traffic, production, drift_started_at, short)
    if stage.settings.label_studio_url:
        close_in_label_studio(stage)
    status = stage.api.get("/v1/labeling/status", model=stage.model)
    stage.timeline.mark(stage.lap_label("labeled"))
    stage.facts["labels_stored"] = status["labels"]
    stage.say(f"{status['labels']} labels stored for {stage.model} (GET /v1/labeling/status).")
    if alert_id is not None:
        harm_against_truth(stage, stage.api.get(f"/v1/alerts/{alert_id}"), "now that random-slice labels came in")
    return status["labels"] > 0


def audit_alert_window(stage: Stage, alert_id: int) -> None:
    """The labels the alert asks for, drawn uniformly from its window (``shiftwatch labeling audit``), so its accuracy
    is measured, not estimated; fewer than it asks (``ALERT_AUDIT_LABELS``): the demo's budget is a day's."""
    ran = stage.shell.run("labeling", "audit", "--alert", str(alert_id), "--labels", str(ALERT_AUDIT_LABELS), "--json",
                          show_output=False)
    drawn = ran.json()
    drawn = drawn[0] if isinstance(drawn, list) else drawn
    stage.say(f"[bold]shiftwatch labeling audit --alert {alert_id}[/]: {drawn['note']}. Their labels measure the "
              "alert's accuracy (prediction-powered, valid whatever the shift).")


def true_drop(stage: Stage) -> float | None:
    """The accuracy users lost, in points, from the demo's ground truth: the phase before this lap's drift minus the drift."""
    before = stage.timeline.accuracy("clean" if stage.lap == 1 else f"recovered{'' if stage.lap == 2 else f'_{stage.lap - 1}'}")
    during = stage.timeline.accuracy(stage.lap_phase("drift"))
    return None if before is None or during is None else 100 * (before - during)


def harm_against_truth(stage: Stage, alert: dict[str, Any], when: str) -> None:
    """The alert's harm, its interval, and the true drop beside it: what the demo can check and a user cannot."""
    harm = alert.get("harm") or {}
    truth = true_drop(stage)
    stage.say(f"Alert #{alert['id']}'s harm {when}: {harm.get('sentence') or 'unknown'}.")
    if truth is None:
        return
    interval = harm.get("interval")
    held = interval is not None and interval[0] <= truth <= interval[1]
    where = ("no interval" if interval is None else
             f"{'inside' if held else 'OUTSIDE'} its 95 % interval {interval[0]:.1f} to {interval[1]:.1f} points")
    stage.say(f"True drop (the demo's ground truth, users' accuracy before vs during the drift): {truth:.1f} points, {where}.")
    key = stage.lap_key("measured" if harm.get("source") == "labeled" else "opened")
    stage.facts[f"{key}_harm_interval"] = "none" if interval is None else f"{interval[0]:.1f} to {interval[1]:.1f} points"
    stage.facts[f"{key}_true_drop_points"] = f"{truth:.1f}"
    stage.facts[f"{key}_interval_holds_true_drop"] = held


def push_to_label_studio(stage: Stage, api_url: str) -> None:
    """With Label Studio configured, tasks really go there (people label them; the oracle fills in for the demo)."""
    where = stage.settings.label_studio_url
    try:
        pushed = stage.api.post("/v1/labeling/push", model=stage.model)
    except DemoApiError as exc:
        stage.say(f"[yellow]Label Studio push failed[/] ({exc.detail}); tasks stay queued and are retried.")
    else:
        stage.say(f"Pushed {pushed['sent']} tasks to Label Studio at [cyan]{where}[/] (project {pushed['project_id']}, "
                  "'By priority' tab). The demo does not wait for people: the [bold]built-in oracle[/] labels "
                  "them, marked annotator=oracle.")
    stage.say(links_note(stage.settings, api_url))


def close_in_label_studio(stage: Stage) -> None:
    """The oracle's labels go to Label Studio as annotations (POST /v1/labeling/push), so no task it answered is
    left open there."""
    try:
        pushed = stage.api.post("/v1/labeling/push", model=stage.model)
    except DemoApiError as exc:
        stage.say(f"[yellow]Sending the oracle's labels to Label Studio failed[/] ({exc.detail}); "
                  "the next push sends them.")
        return
    stage.say(f"Sent the oracle's {pushed['closed']} labels to Label Studio as annotations: those tasks show as "
              "completed there (a person's correction replaces the oracle's label).")


def retrain(stage: Stage) -> str | None:
    """Act 7: ``shiftwatch retrain``: fine-tune production on reference + labeled data, compress, gate, register."""
    production = stage.api.version_in(stage.model, "production")
    scale = stage.scale
    stage.say(f"Fine-tuning {production} on {stage.subject.reference_data} plus the labeled production samples; "
              f"compressing ({', '.join(scale.compress_steps) or 'none'}); the gate compares old and new "
              "held-out accuracy.")
    summary = run_retrain(stage, scale.compress_steps)
    if summary is None:
        return None
    version = str(summary["version"])
    stage.timeline.mark(stage.lap_label(f"candidate {version}"))
    stage.facts[stage.lap_key("candidate")] = f"{version}: {describe_artifact(summary)}"
    stage.facts[stage.lap_key("candidate_accuracy_reference_vs_drifted")] = (
        f"{summary.get('accuracy_old') or float('nan'):.1%} / {summary.get('accuracy_new') or float('nan'):.1%}")
    stage.say(f"Registered candidate [bold]{stage.model} {version}[/]: accuracy on {stage.subject.reference_data} "
              f"{summary.get('accuracy_old') or float('nan'):.1%}, on held-out labeled production samples "
              f"{summary.get('accuracy_new') or float('nan'):.1%}; {describe_artifact(summary)}")
    return version


def run_retrain(stage: Stage, steps: tuple[str, ...]) -> dict[str, Any] | None:
    """The command; if the int8 artifact fails its parity check (exit 2), say so and ship fp32 instead."""
    scale = stage.scale
    args = ("retrain", "--model", stage.model, "--compress", ",".join(steps) or "none",
            "--epochs", str(scale.finetune_epochs), "--lr", str(scale.finetune_lr),
            "--production-share", str(scale.production_share))
    try:
        ran = stage.shell.run(*args, ok=(0, 1), show_output=False, waiting=f"retraining {stage.model}")
    except CommandFailed as exc:
        if not steps or "parity" not in str(exc).lower():
            raise
        stage.say(f"[yellow]Compression refused[/]: {exc}. Retraining without compression (fp32).")
        stage.facts["compression_refused"] = str(exc)[-300:]
        return run_retrain(stage, ())
    summary: dict[str, Any] = ran.json()
    if ran.code != 0:
        gate = summary.get("gate") or {}
        stage.say(f"[red]The gate rejected the candidate[/]: {'; '.join(gate.get('reasons', []))}")
        return None
    return summary


def roll_out(stage: Stage, service: Service, candidate: str) -> RolloutResult:
    """Act 8: shadow (mirror and compare), then canary steps, judged by the server's rollout controller."""
    # Smaller steps than production defaults so a few thousand requests show every stage. The
    # agreement and confidence guardrails are off: production is the model the open alert says is
    # wrong, so a better candidate must disagree with it, and may well be less sure than a confidently
    # wrong one (lap 2's negatives: v2 answers wrongly at near-certainty, and v3's mean confidence
    # was 0.47 lower in a measured run); the accuracy SPRT on audit labels judges instead.
    # The latency budget is the subject's (see Subject.latency_budget_ms).
    steps = [0.25, 0.5]
    plan: dict[str, Any] = {"canary_steps": steps, "min_shadow_pairs": 200, "min_step_predictions": 100,
                            "min_agreement": 0.0, "max_confidence_drop": 1.0,
                            "latency_budget_ms": stage.subject.latency_budget_ms}
    rollout = stage.api.post("/v1/rollouts", {"model": stage.model, "version": candidate, "plan": plan})
    rollout_id = int(rollout["id"])
    started_at = datetime.now(UTC)
    stage.timeline.mark(stage.lap_label("shadow"))
    stage.say(f"[bold]POST /v1/rollouts[/]: rollout #{rollout_id}: {candidate} mirrors production traffic in "
              f"[bold]shadow[/] (needs {plan['min_shadow_pairs']} paired requests), then takes canary shares "
              f"{', '.join(f'{s:.0%}' for s in steps)}; the server's controller judges every second. "
              "Approval needs the accuracy test to decide on labels from the uniform audit slice of both routes.")
    last = {"state": "shadow", "decision": None}

    def after_batch() -> bool:
        wait_until_stored(stage, service.traffic)
        if last["state"] == "canary":  # the audit slice now covers the candidate's answers: label what is queued
            stage.api.post("/v1/labeling/select", model=stage.model, batch_size=stage.scale.batch,
                           hours=f"{(datetime.now(UTC) - started_at).total_seconds() / 3600 + 1 / 60:.4f}")
            answer_queue(stage, service.traffic, show=False)
        time.sleep(stage.settings.rollout_tick_seconds + 0.2)  # a controller tick on what was just logged
        now = stage.api.get(f"/v1/rollouts/{rollout_id}")
        decision = now["last_decision"] or {}
        if (now["state"], decision.get("decision")) != (last["state"], last["decision"]):
            stage.say(f"  controller: {now['state']}, {decision.get('decision')}: {'; '.join(decision.get('reasons', []))}")
            if now["state"] != last["state"]:
                stage.timeline.mark(stage.lap_label(now["state"]))
                time.sleep(stage.settings.gateway_refresh_seconds + 0.2)  # the gateway reads the new share
            last.update(state=now["state"], decision=decision.get("decision"))
        return now["state"] not in ("shadow", "canary") or last["decision"] == "await_approval"

    time.sleep(stage.settings.gateway_refresh_seconds + 0.5)  # the gateway picks the rollout up
    stream(stage, service, stage.scale.rollout_requests, stage.lap_phase("rollout"), "shadow + canary traffic",
           after_batch=after_batch)
    stage.facts["canary_requests_answered_by_candidate"] = stage.routes["canary"]
    if last["decision"] != "await_approval":
        stage.say(f"[red]The rollout ended as {last['state']} ({last['decision']})[/]; no promotion.")
        return RolloutResult(rollout_id, awaiting_approval=False)
    return RolloutResult(rollout_id, awaiting_approval=True)


def roll_out_and_approve(stage: Stage, service: Service, candidate: str) -> tuple[int | None, bool]:
    """Acts 8 and 9 of every lap: shadow, canary, a person's approval; (rollout id, promoted)."""
    with stage.act(8, "shadow, then canary"):
        rollout = roll_out(stage, service, candidate)
        if not rollout.awaiting_approval:
            return rollout.rollout_id, False
    with stage.act(9, "approval and promotion"):
        return rollout.rollout_id, approve(stage, rollout.rollout_id)


def approve(stage: Stage, rollout_id: int) -> bool:
    """Act 9: a person approves in the console (or --yes does), and the candidate becomes production."""
    url = f"{stage.api.url}/console/rollouts/{rollout_id}"
    if stage.auto_approve:
        try:
            stage.api.post(f"/v1/rollouts/{rollout_id}/approve", {"reason": "approved by shiftwatch demo --yes"})
        except DemoApiError as exc:
            stage.say(f"[red]Approval refused[/]: {exc.detail}")
            return False
        stage.say(f"Approved automatically (--yes: [bold]POST /v1/rollouts/{rollout_id}/approve[/], no --force). "
                  f"A person would press Approve at [cyan]{url}[/].")
    else:
        stage.say(f"[bold]Waiting for approval:[/] open [cyan]{url}[/] (log in with the demo-operator token "
                  "printed in act 1) and press Approve or Reject.")
        if not wait_for_decision(stage, rollout_id):
            stage.say("[red]No promotion[/]: the candidate was not approved.")
            return False
    production = stage.api.version_in(stage.model, "production") or "-"
    stage.promoted_at = datetime.now(UTC)
    stage.timeline.mark(stage.lap_label(f"promoted {production}"))
    stage.facts[stage.lap_key("promoted")] = production
    stage.say(f"[bold green]{stage.model} {production} is production.[/]")
    time.sleep(stage.settings.gateway_refresh_seconds + 0.5)  # the gateway swaps its route table
    return True


def wait_for_decision(stage: Stage, rollout_id: int) -> bool:
    """Poll the rollout until a person decides in the console; True when approved."""
    deadline = time.monotonic() + APPROVAL_TIMEOUT_S
    while time.monotonic() < deadline:
        state = stage.api.get(f"/v1/rollouts/{rollout_id}")["state"]
        if state not in ("shadow", "canary"):
            return state == "production"
        time.sleep(1.0)
    return False


def carried_over(stage: Stage, service: Service) -> None:
    """Between laps: the promoted version is watched as its predecessor was (promotion carries detectors and a
    reference over, and resolves the old version's alerts); the demo reads that back, as a user would check."""
    version = stage.api.version_in(stage.model, "production") or "-"
    configs = stage.api.get("/v1/detector-configs", model=stage.model, version=version)
    try:
        reference = stage.api.get(f"/v1/models/{stage.model}/versions/{version}/reference")
    except DemoApiError:
        reference = None
    if configs and reference:
        stage.say(f"{version} inherited {len(configs)} detector config(s) and a reference of {reference['n']} "
                  "predictions from the promotion; the retired version's alerts were resolved.")
        return
    stage.not_built("promotion carrying detectors and a reference over to the new version",
                    f"The demo pins {version}'s reference and adds its detector itself.")
    acts.watch_reference(stage, service.traffic, version, stage.promoted_at or stage.started_at)
