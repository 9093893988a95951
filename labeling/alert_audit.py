"""The labels an alert asks for, queued in one call: a uniform draw of the alert's window as its audit slice (issue 24).

An alert's harm says how many random-slice labels of its window would measure the accuracy to
±5 points. ``queue_alert_audit`` draws that many of the window's predictions uniformly (those
with a stored input: a person must see it) and queues them with reason ``random``. As their labels
arrive, ``alert_accuracy.refresh`` turns the alert's harm into the prediction-powered one.

The draw is over the *whole* window, rows already queued for another reason included: leaving
them out would bias the slice (the policy queues the uncertain rows first, and those are the
wrong ones). A drawn row already queued keeps its one task, now marked ``random`` (its old reason
stays in the evidence), so its label counts in the slice, as the draw says it must.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.queries import window
from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.detectors.tables import Alert, DriftRun
from shiftwatch.errors import Invalid, NotFound
from shiftwatch.labeling.audit import WindowCandidates
from shiftwatch.labeling.policy import Budget
from shiftwatch.labeling.queue import insert_candidates, queued_today
from shiftwatch.labeling.selection import PRIORITY_BASE
from shiftwatch.labeling.tables import UNIFORM_REASONS, LabelTask

DEFAULT_LABELS = 100  # when the alert's harm names no number to ask for


@dataclass(frozen=True, slots=True)
class AlertAudit:
    """What one call queued for an alert: how many drawn, new tasks, tasks joined to the slice, and the budget left."""

    alert_id: int
    model_version_id: int
    window: int  # predictions in the alert's window with a stored input
    asked: int
    drawn: int
    queued: int  # new tasks
    joined: int  # drawn rows queued before for another reason, now in the random slice
    in_slice: int  # drawn rows that were in the random slice already
    budget_left: int
    note: str


def labels_asked(alert: Alert) -> int:
    """The labels the alert's harm asks for ("about N random-slice labels ..."), else ``DEFAULT_LABELS``."""
    stored = (alert.evidence or {}).get("harm") or {}
    note = str(stored.get("note", ""))
    marker = note.find(" random-slice labels")
    words = note[:marker].split() if marker > 0 else []
    return int(words[-1]) if words and words[-1].isdigit() else DEFAULT_LABELS


def queue_alert_audit(session: Session, alert_id: int, labels: int | None, budget_of: Callable[[str], Budget],
                      now: datetime, seed: int | None = None) -> AlertAudit:
    """Draw ``labels`` (default: what the alert asks for) of the alert's window uniformly and queue them as its audit slice."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} not found")
    if labels is not None and labels < 1:
        raise Invalid("labels", f"must be at least 1, got {labels}")
    run = session.get(DriftRun, alert.last_run_id)
    if run is None or run.window_start is None or run.window_end is None:
        raise Invalid("alert", f"alert {alert_id}'s run records no window to draw from")
    asked = labels or labels_asked(alert)
    # The same rows alert_accuracy reads back: the run's window, both ends in.
    win = window(session, alert.model_version_id, start=run.window_start, end=run.window_end + timedelta(microseconds=1))
    usable = np.asarray([i for i in range(len(win)) if win.input_ref[i] is not None], dtype=np.int64)
    version = session.get(ModelVersion, alert.model_version_id)
    model = None if version is None else session.get(Model, version.model_id)
    assert version is not None and model is not None  # the alert's foreign keys
    room = max(budget_of(model.name).daily - queued_today(session, model.id, now), 0)
    ids = [win.ids[int(i)] for i in usable]
    tasks = {t.prediction_id: t for t in session.scalars(select(LabelTask).where(LabelTask.prediction_id.in_(ids)))} if ids else {}
    # A prefix of a random order is a uniform sample: walk it, and stop (not skip) at the first row the budget cannot take.
    picks, fresh = [], []
    for i in np.random.default_rng(seed).permutation(usable).tolist():
        if len(picks) == asked or (win.ids[i] not in tasks and len(fresh) == room):
            break
        picks.append(i)
        if win.ids[i] not in tasks:
            fresh.append(i)
    drawn_tasks = [tasks[win.ids[i]] for i in picks if win.ids[i] in tasks]
    evidence = {"slice": "audit", "alert": alert_id, "version": version.version}
    candidates = WindowCandidates(win, usable, alert.model_version_id)
    queued = insert_candidates(session, [candidates.at(i, "random", PRIORITY_BASE["random"], evidence) for i in fresh], now)
    joined = in_slice = 0
    for task in drawn_tasks:
        if task.reason in UNIFORM_REASONS:
            in_slice += 1
            continue
        task.evidence = {**(task.evidence or {}), "also": task.reason, **evidence}
        task.reason, joined = "random", joined + 1
    session.flush()
    short = min(asked, len(usable)) - len(picks)
    note = (f"drew {len(picks)} of the window's {len(usable)} predictions with a stored input uniformly: {queued} queued, "
            f"{joined} already queued for another reason now count in the random slice, {in_slice} were in it already")
    if short > 0:
        note += f"; {short} not queued: the daily labeling budget is spent (SHIFTWATCH_LABELING_DAILY_BUDGET)"
    if len(usable) < asked:
        note += f"; the window holds fewer than the {asked} asked for"
    return AlertAudit(alert_id=alert_id, model_version_id=alert.model_version_id, window=len(usable), asked=asked,
                      drawn=len(picks), queued=queued, joined=joined, in_slice=in_slice,
                      budget_left=max(room - queued, 0), note=note)
