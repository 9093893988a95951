"""The concept-drift lap (``shiftwatch demo --concept``): the right answer changes, the inputs do not.

The team redefines a class: from now on every digit the model calls ``1`` is filed as ``7`` (a
product renamed, a defect class merged). The images, and so the embeddings and confidences, are
exactly what they were: no input or output detector can see it. What sees it is the scheduled
``labeled_accuracy`` detector, on the labels of the audit slice (drawn uniformly). The lap, told
through the CLI and HTTP only like the rest of the demo:

4. a labeled reference (the audit slice of production's reference window, labeled under the old
   definition) and a ``labeled_accuracy`` detector; then the definition changes;
5. the new labels come in; ``labeled_accuracy`` alerts, and the alert says "concept drift" (the
   input detector tested the same windows and stayed quiet);
6. ``shiftwatch labeling retire``: the old definition's labels of that class are kept for audit and
   left out of retraining and of every labeled accuracy;
7. ``shiftwatch retrain`` on the new definition's labels; 8-9. shadow, canary, approval (loop.py);
10. the promoted version, judged on the new definition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shiftwatch.demo import acts, loop
from shiftwatch.demo.oracle import answer_queue, label_sample
from shiftwatch.demo.shell import CommandFailed
from shiftwatch.demo.stage import Service, Stage

# The redefinition: every ``1`` is a ``7`` from now on (about a tenth of the digits' traffic).
OLD_CLASS, NEW_CLASS = 1, 7
# Audit-slice labels asked for per selection run (the audit takes half a batch: labeling_audit_share).
AUDIT_LABELS = 200
# Rounds of new traffic and labels the demo gives the labeled detector before it gives up.
MAX_LABEL_ROUNDS = 4
# At most this many of production's predictions of the redefined class are relabeled for training (act 6).
RELABEL_MOST = 300
# The smallest accuracy drop worth a page, in points: the demo's redefinition costs about ten.
MIN_EFFECT_POINTS = 5.0
# The reference set still answers the old question for the redefined class: the gate may lose this much on it.
MAX_OLD_DROP_POINTS = 20.0
# Share of each fine-tuning epoch that is labeled production samples: the new definition must outweigh the old
# reference set's (which labels the redefined class the old way).
PRODUCTION_SHARE = 0.9


def labeling_settings(wanted_budget: int) -> dict[str, int]:
    """The server's labeling settings for a story with a concept lap: an audit slice big enough to measure accuracy
    (``AUDIT_LABELS`` per route and run, not the default 10), and the daily budget for its rounds."""
    return {"labeling_audit_per_route": AUDIT_LABELS,
            "labeling_daily_budget": wanted_budget + 2 * AUDIT_LABELS * (MAX_LABEL_ROUNDS + 2)}


@dataclass(frozen=True, slots=True)
class Redefinition:
    """When the definition changed, and which detector configs watch production."""

    changed_at: datetime
    labeled_config: int
    input_configs: tuple[int, ...]


def tell(stage: Stage, service: Service) -> tuple[int | None, bool]:
    """Acts 4-10 of a concept-drift lap; (the rollout's id, whether its candidate was promoted)."""
    production = stage.api.version_in(stage.model, "production") or "v1"
    with stage.act(4, "the right answer changes, the inputs do not"):
        redefined = redefine(stage, service, production)
        acts.stream(stage, service, stage.scale.drift_requests, stage.lap_phase("drift"),
                    f"the same inputs, a '{OLD_CLASS}' now counted right only as '{NEW_CLASS}'")
    with stage.act(5, "labels show what the inputs cannot"):
        if not detect(stage, service, production, redefined):
            return None, False
    with stage.act(6, "the old definition's labels retired"):
        retire(stage, redefined.changed_at)
        relabeled = label_sample(stage, service.traffic, production, redefined.changed_at, RELABEL_MOST, predicted=OLD_CLASS)
        stage.facts[stage.lap_key("relabeled_under_new_definition")] = relabeled
        stage.say(f"The team also labels what {production} filed as '{OLD_CLASS}' since the redefinition ({relabeled} "
                  "predictions, GET /v1/predictions, through the same import): chosen by class, these train the "
                  "candidate and never count for accuracy (only the audit slice does).")
    with stage.act(7, "a candidate on the new definition"):
        candidate = retrain(stage)
        if candidate is None:
            return None, False
    rollout_id, promoted = loop.roll_out_and_approve(stage, service, candidate)
    if not promoted:
        return rollout_id, False
    with stage.act(10, "accuracy on the new definition"):
        acts.stream(stage, service, stage.scale.recovered_requests, stage.lap_phase("recovered"),
                    "traffic after promotion, judged on the new definition")
        during, after = (stage.timeline.accuracy(stage.lap_phase(p)) for p in ("drift", "recovered"))
        stage.facts[stage.lap_key("concept_accuracy_during_after")] = f"{during or float('nan'):.1%} -> {after or float('nan'):.1%}"
        if stage.lap < stage.laps:
            loop.carried_over(stage, service)
    return rollout_id, True


def redefine(stage: Stage, service: Service, production: str) -> Redefinition:
    """Label production's reference window (old definition), watch it with ``labeled_accuracy``, then change the labels."""
    reference = stage.api.get(f"/v1/models/{stage.model}/versions/{production}/reference")
    # Labels of the traffic the reference stands for, given under the old definition: a reference pinned from traffic
    # is scored on them; an uploaded one carries its own, and these are what the redefinition will retire.
    since = datetime.fromisoformat(reference["start"]) if reference.get("start") else stage.started_at
    label_round(stage, service, since, "the reference traffic's audit slice")
    config = stage.api.post("/v1/detector-configs", {
        "model": stage.model, "version": production, "detector": "labeled_accuracy", "name": "labeled_accuracy",
        "window_last_n": stage.scale.drift_requests, "schedule_seconds": 1, "confirm_runs": 1, "alpha": 0.01,
        "min_effect": MIN_EFFECT_POINTS})
    configs = stage.api.get("/v1/detector-configs", model=stage.model, version=production)
    inputs = tuple(int(c["id"]) for c in configs if c["detector"] != "labeled_accuracy")
    stage.say(f"Watching {production}'s accuracy on the audit slice's labels too: [bold]labeled_accuracy[/] "
              f"(#{config['id']}, POST /v1/detector-configs) over its last {config['window_last_n']} predictions, "
              f"paging for a drop of at least {MIN_EFFECT_POINTS:g} points at alpha {config['alpha']}; its reference "
              f"is the labels of {production}'s reference, given under the old definition.")
    traffic = service.traffic
    traffic.labels = np.where(traffic.labels == OLD_CLASS, NEW_CLASS, traffic.labels)
    changed_at = datetime.now(UTC)
    stage.timeline.mark(stage.lap_label(f"redefined: {OLD_CLASS} -> {NEW_CLASS}"))
    stage.say(f"[bold red]The team redefines a class[/]: from now on every '{OLD_CLASS}' is filed as "
              f"'{NEW_CLASS}' (a product renamed). The cameras send the same images; nobody tells the model.")
    return Redefinition(changed_at, int(config["id"]), inputs)


def label_round(stage: Stage, service: Service, since: datetime, what: str) -> int:
    """Queue a batch whose audit half is ``AUDIT_LABELS`` uniform samples since ``since``; the oracle labels it all."""
    hours = (datetime.now(UTC) - since).total_seconds() / 3600 + 1 / 60
    acts.wait_until_stored(stage, service.traffic)
    selected = stage.api.post("/v1/labeling/select", model=stage.model, hours=f"{hours:.4f}", batch_size=2 * AUDIT_LABELS)
    audit = int(selected["by_reason"].get("random", 0))
    stage.say(f"POST /v1/labeling/select: {selected['queued']} samples queued, {audit} of them {what} (drawn uniformly).")
    answer_queue(stage, service.traffic, show=False)
    return audit


def detect(stage: Stage, service: Service, production: str, redefined: Redefinition) -> bool:
    """Act 5: labels of the new traffic come in until ``labeled_accuracy`` alerts; the input detector stays quiet."""
    alert = None
    for attempt in range(1, MAX_LABEL_ROUNDS + 1):
        label_round(stage, service, redefined.changed_at, "the audit slice since the redefinition")
        time.sleep(stage.settings.detector_tick_seconds * 2 + 0.5)  # a tick on the new labels
        runs = stage.api.get(f"/v1/detector-configs/{redefined.labeled_config}/runs", limit=1)
        if runs:
            stage.say(f"labeled_accuracy, latest run: {loop.describe_run(runs[0])}")
        alert = next((a for a in loop.open_alerts(stage, production) if "labeled_accuracy" in a["title"]), None)
        if alert is not None:
            break
        if attempt < MAX_LABEL_ROUNDS:
            acts.stream(stage, service, stage.scale.batch * 3, stage.lap_phase("drift"), "more traffic, more labels")
    for config_id in redefined.input_configs:
        runs = stage.api.get(f"/v1/detector-configs/{config_id}/runs", limit=1)
        if runs:
            stage.say(f"input detector #{config_id}, latest run on the same traffic: {loop.describe_run(runs[0])}")
    if alert is None:
        stage.say("[red]No labeled-accuracy alert[/]: the labels did not show the drop.")
        return False
    stage.timeline.mark(stage.lap_label("concept drift alert"))
    stage.facts[stage.lap_key("alert")] = f"#{alert['id']} {alert['severity']}: {alert['title']}"
    stage.say(f"[bold red]ALERT #{alert['id']}[/] ({alert['severity']}) on {production}: {alert['title']}")
    stage.say(f"Realized accuracy with its interval, and why it is concept drift: [cyan]{alert['console_url']}[/]")
    return True


def retire(stage: Stage, changed_at: datetime) -> None:
    """Act 6: the labels given under the old definition of the redefined class leave training and accuracy."""
    names = stage.api.get(f"/v1/models/{stage.model}")["class_names"]
    ran = stage.shell.run("labeling", "retire", "--model", stage.model, "--before", changed_at.isoformat(),
                          "--class", str(names[OLD_CLASS]), "--reason", f"'{OLD_CLASS}' is filed as '{NEW_CLASS}' now",
                          "--json", show_output=False)
    done: dict[str, Any] = ran.json()
    stage.facts[stage.lap_key("labels_retired")] = int(done["retired"])
    stage.say(f"Retired {done['retired']} labels that called a digit '{names[OLD_CLASS]}' before the redefinition: "
              f"kept for audit, out of retraining and of every labeled accuracy ({done['active']} labels stay in use; "
              "POST /v1/labels/retire does the same, and a new label for a retired sample brings it back).")


def retrain(stage: Stage, steps: tuple[str, ...] | None = None) -> str | None:
    """Act 7: the candidate learns the new definition from the labels that use it (the retired ones are left out)."""
    scale = stage.scale
    steps = scale.compress_steps if steps is None else steps
    stage.say(f"Fine-tuning on the labels in use ({PRODUCTION_SHARE:.0%} of each epoch) plus "
              f"{stage.subject.reference_data}. That reference set still files a '{OLD_CLASS}' as '{OLD_CLASS}': "
              f"the gate may lose up to {MAX_OLD_DROP_POINTS:g} points on it (--max-old-drop), and must gain on the "
              "held-out new-definition labels.")
    args = ("retrain", "--model", stage.model, "--compress", ",".join(steps) or "none",
            "--epochs", str(scale.finetune_epochs), "--lr", str(scale.finetune_lr),
            "--production-share", str(PRODUCTION_SHARE), "--max-old-drop", str(MAX_OLD_DROP_POINTS))
    try:
        ran = stage.shell.run(*args, ok=(0, 1), show_output=False, waiting=f"retraining {stage.model}")
    except CommandFailed as exc:  # the int8 artifact failed its parity check: ship fp32, as act 7 does
        if not steps or "parity" not in str(exc).lower():
            raise
        stage.say(f"[yellow]Compression refused[/]: {exc}. Retraining without compression (fp32).")
        return retrain(stage, ())
    summary: dict[str, Any] = ran.json()
    if ran.code != 0:
        stage.say(f"[red]The gate rejected the candidate[/]: {'; '.join((summary.get('gate') or {}).get('reasons', []))}")
        return None
    version = str(summary["version"])
    stage.timeline.mark(stage.lap_label(f"candidate {version}"))
    stage.facts[stage.lap_key("candidate")] = f"{version}: {acts.describe_artifact(summary)}"
    stage.say(f"Registered candidate [bold]{stage.model} {version}[/]: held-out new-definition labels "
              f"{summary.get('accuracy_new') or float('nan'):.1%}, reference set (old definition) "
              f"{summary.get('accuracy_old') or float('nan'):.1%}.")
    return version
