"""What one Label Studio task carries: the image links, its priority as a number, and in words why it is there.

A triager decides faster and better knowing why a sample was queued (a detector flagged it,
the model was unsure, the production and candidate models disagree, or it is the random audit
slice), what the evidence was, and which drift alert it belongs to. All of it is written
into the task's data: the labeling view shows ``headline`` and ``why``; ``priority``,
``reason`` and ``alert_id`` are data-manager columns to sort and filter by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.detectors.tables import Alert
from shiftwatch.errors import Invalid, NotFound
from shiftwatch.labeling.input_links import InputLinks
from shiftwatch.labeling.selection import PRIORITY_BASE
from shiftwatch.labeling.stretch import ImageSize, image_size
from shiftwatch.labeling.studio import PREDICTION_MODEL_VERSION, choice_result, labeling_order
from shiftwatch.labeling.tables import LabelTask

# What each reason means, in a triager's words.
REASON_TEXT = {
    "disagreement": "the production model and the candidate answered differently: your label decides which is right",
    "flagged": "a drift detector found it among the inputs least like the model's reference data",
    "uncertain": "the model was unsure: its top two answers were close",
    "random": "the random audit slice: drawn uniformly from production traffic, so accuracy measured on "
    "labels stays unbiased; label it as carefully as any other",
    "imported": "its label came from an import (a file or POST /v1/labels), not from a labeling queue",
}
# The top of the highest band: a priority reads "3.42 of 4".
PRIORITY_MAX = max(PRIORITY_BASE.values()) + 1.0
BANDS = ", ".join(
    f"{reason} {base:g}" + ("" if reason == "random" else f"-{base + 1:g}") for reason, base in PRIORITY_BASE.items()
)


@dataclass(frozen=True, slots=True)
class AlertRef:
    """A drift alert as a task names it: enough to say which one and link to its console page."""

    id: int
    title: str
    state: str
    opened_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What every task of one push shares: the links, the class names, version names, alerts, the console URL."""

    links: InputLinks
    class_names: list[str]
    versions: dict[int, str]
    alerts: Sequence[AlertRef]  # newest first
    console_url: str


def task_context(session: Session, links: InputLinks, console_url: str, model_name: str) -> TaskContext:
    """What the tasks of one push of ``model_name`` share, read once; ``console_url`` is SHIFTWATCH_PUBLIC_URL."""
    model = registry.get_model(session, model_name)
    return TaskContext(
        links=links,
        class_names=list(model.class_names),
        versions={v.id: v.version for v in registry.list_versions(session, model_name)},
        alerts=model_alerts(session, model.id),
        console_url=console_url.rstrip("/"),
    )


def model_alerts(session: Session, model_id: int) -> list[AlertRef]:
    """The model's drift alerts on any version, newest first."""
    stmt = (
        select(Alert)
        .join(ModelVersion, ModelVersion.id == Alert.model_version_id)
        .where(ModelVersion.model_id == model_id)
        .order_by(Alert.opened_at.desc(), Alert.id.desc())
    )
    return [AlertRef(a.id, a.title, a.state, a.opened_at, a.resolved_at) for a in session.scalars(stmt)]


def alert_of(task: LabelTask, alerts: Sequence[AlertRef]) -> AlertRef | None:
    """The newest alert that was open (not yet resolved) when the task was queued; None if none was."""
    for alert in alerts:
        if alert.opened_at <= task.created_at and (alert.resolved_at is None or alert.resolved_at >= task.created_at):
            return alert
    return None


def _class(names: list[str], index: Any) -> str:
    try:
        return names[int(index)]
    except (TypeError, ValueError, IndexError):
        return str(index)


def _runner_up(task: LabelTask, names: list[str]) -> str:
    if task.probabilities is None or len(task.probabilities) < 2:
        return ""
    order = np.argsort(-np.asarray(task.probabilities))
    second = int(order[1]) if int(order[0]) == task.predicted_class else int(order[0])
    return f"; runner-up {_class(names, second)} ({float(task.probabilities[second]):.2f})"


def evidence_text(task: LabelTask, names: list[str]) -> str:
    """The selector's evidence in words: margin, detector and score, both models' answers."""
    evidence = dict(task.evidence or {})
    parts = []
    if task.reason == "disagreement" and "production_class" in evidence:
        parts.append(f"production answered {_class(names, evidence.pop('production_class'))}, "
                     f"the candidate answered {_class(names, evidence.pop('candidate_class', task.predicted_class))}")
    if "margin" in evidence:
        parts.append(f"top-1 beat the runner-up by {float(evidence.pop('margin')):.2f} (queued under 0.5)")
    if "score" in evidence:
        parts.append(f"detector {evidence.pop('method', 'detector')} scored it {float(evidence.pop('score')):.3g} "
                     "(higher: less like the reference)")
    share = evidence.pop("slice", None)
    if isinstance(share, int | float):
        parts.append(f"{share:.0%} of each batch is drawn this way")
    if "route" in evidence:
        parts.append(f"audit sample of the {evidence.pop('route')} route ({evidence.pop('version', '?')})")
    for key in ("prediction_id", "input_ref", "ts", "request_id"):  # bookkeeping, already on the task
        evidence.pop(key, None)
    parts.extend(f"{key}: {value}" for key, value in sorted(evidence.items()))
    return "; ".join(parts) or "none recorded"


def headline(task: LabelTask, names: list[str]) -> str:
    """One line above the image: the priority and the reason, with the deciding fact."""
    evidence = task.evidence or {}
    if task.reason == "disagreement" and "production_class" in evidence:
        detail = (f"production says {_class(names, evidence['production_class'])}, "
                  f"the candidate says {_class(names, evidence.get('candidate_class', task.predicted_class))}")
    elif task.reason == "uncertain" and "margin" in evidence:
        detail = f"the model's top two answers were {float(evidence['margin']):.2f} apart"
    elif task.reason == "flagged":
        detail = f"flagged by the drift detector ({evidence.get('method', 'detector')})"
    elif task.reason == "random":
        detail = "random audit sample"
    else:
        detail = task.reason
    return f"Priority {task.priority:.2f} of {PRIORITY_MAX:g} · {task.reason}: {detail}"


def why_html(task: LabelTask, version: str, names: list[str], alert: AlertRef | None, console_url: str) -> str:
    """The task's explanation as HTML (every value escaped): reason, the model's answer, evidence, alert link."""
    reason = REASON_TEXT.get(task.reason, task.reason)
    answer = (f"{_class(names, task.predicted_class)} with confidence {task.confidence:.2f}"
              f"{_runner_up(task, names)} (pre-selected: confirm or correct it)")
    if alert is None:
        alert_line = "no drift alert was open for this model when it was queued"
    else:
        href = f"{console_url}/console/alerts/{alert.id}"
        alert_line = (f'<a href="{escape(href)}" target="_blank" rel="noopener">alert #{alert.id}: '
                      f"{escape(alert.title)}</a> ({escape(alert.state)})")
    rows = [
        ("Why it is here", escape(f"{task.reason}: {reason}")),
        (f"The model ({escape(version)}) answered", escape(answer)),
        ("Evidence", escape(evidence_text(task, names))),
        ("Priority", escape(f"{task.priority:.2f} of {PRIORITY_MAX:g} (bands: {BANDS})")),
        ("Drift alert", alert_line),
    ]
    items = "".join(f"<li><b>{label}:</b> {text}</li>" for label, text in rows)
    return f'<ul style="margin: 8px 0; padding-left: 20px; line-height: 1.5">{items}</ul>'


def task_payload(context: TaskContext, task: LabelTask) -> dict[str, Any]:
    """A Label Studio task for ``task``: data (links, number priority, explanation) and the model's pre-annotation."""
    assert task.input_ref is not None  # selection and enqueue never queue a task without an input
    version = context.versions[task.model_version_id]
    alert = alert_of(task, context.alerts)
    image = context.links.link(task.input_ref)
    return {
        "data": {
            "image": image,
            "stretched": f"{image}&view=stretched",
            "prediction_id": str(task.prediction_id),
            "priority": round(float(task.priority), 4),
            # The uniformly random slice shows as "audit" (annotators and reviewers should label it as
            # carefully as the hard ones: accuracy is measured on it), with the route it audits.
            "reason": "audit" if task.reason == "random" else task.reason,
            **({"route": task.evidence["route"]} if "route" in (task.evidence or {}) else {}),
            "model_version": version,
            "alert_id": None if alert is None else alert.id,
            "headline": headline(task, context.class_names),
            "why": why_html(task, version, context.class_names, alert, context.console_url),
        },
        "predictions": [
            {
                "model_version": PREDICTION_MODEL_VERSION,  # one for all versions: see studio.SAMPLING
                "score": labeling_order(task.priority, PRIORITY_MAX),
                "result": choice_result(context.class_names[task.predicted_class]),
            }
        ],
    }


def first_image_size(store: InputStore, tasks: Sequence[LabelTask], tries: int = 5) -> ImageSize | None:
    """The size of the first of ``tasks``' inputs that reads as an image: what the project's view is sized for."""
    for task in tasks[:tries]:
        try:
            size = image_size(store.get(task.input_ref or ""))
        except (Invalid, NotFound):  # not stored (retention) or not a stored ref
            continue
        if size is not None:
            return size
    return None
