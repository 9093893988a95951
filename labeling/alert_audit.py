"""The labels an alert asks for, queued in one call: a draw of the alert's window its accuracy is then measured on (issue 24).

An alert's harm says how many random-slice labels of its window would measure the accuracy to
±5 points. ``queue_alert_audit`` draws about that many of the window's predictions (those with a
stored input: a person must see it); as their labels arrive, ``alert_accuracy.refresh`` turns the
alert's harm into the measured one. Two designs:

- ``weighted`` (where the alert's label-free estimate passed its reliability checks): each row is
  drawn with a known probability, half uniform, half where CBPE is least sure of its verdict
  (``intervals.weighted_draw``), and measured by the difference estimator. On the bench its
  interval is far narrower than the same number of uniform labels' (bench/accuracy_estimators.py).
- ``uniform`` (otherwise: a predictor that is wrong would steer the draw): the rows join the random
  slice (reason ``random``) and PPI++ measures them.

The draw is over the *whole* window, rows already queued for another reason included: leaving
them out would bias it (the policy queues the uncertain rows first, and those are the wrong ones).
A drawn row already queued keeps its one task: a uniform draw marks it ``random`` (its old reason
stays in the evidence), a weighted one records its probability in the evidence. Rows are taken in
a random order until the daily budget stops the draw: what is left is a random part of it. An
alert gets one weighted draw per window (a second is refused: the two would overlap with
probabilities neither records); uniform draws add up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.queries import Window
from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.detectors import references
from shiftwatch.detectors.intervals import weighted_draw
from shiftwatch.detectors.tables import Alert, DriftRun
from shiftwatch.errors import Conflict, Invalid, NotFound
from shiftwatch.labeling.alert_accuracy import population
from shiftwatch.labeling.audit import WindowCandidates
from shiftwatch.labeling.policy import Budget
from shiftwatch.labeling.queries import DRAWS_KEY
from shiftwatch.labeling.queue import insert_candidates, queued_today
from shiftwatch.labeling.selection import PRIORITY_BASE
from shiftwatch.labeling.tables import UNIFORM_REASONS, LabelTask

DEFAULT_LABELS = 100  # when the alert's harm names no number to ask for
Design = Literal["auto", "weighted", "uniform"]


@dataclass(frozen=True, slots=True)
class AlertAudit:
    """What one call queued for an alert: its design, how many drawn, new tasks, tasks joined, and the budget left."""

    alert_id: int
    model_version_id: int
    design: str  # weighted | uniform
    window: int  # predictions in the alert's window with a stored input
    asked: int
    drawn: int
    queued: int  # new tasks
    joined: int  # drawn rows queued before for another reason, now part of this draw
    in_slice: int  # drawn rows that were in the random slice already (uniform design)
    budget_left: int
    note: str


def labels_asked(alert: Alert) -> int:
    """The labels the alert's harm asks for ("about N random-slice labels ..."), else ``DEFAULT_LABELS``."""
    stored = (alert.evidence or {}).get("harm") or {}
    note = str(stored.get("note", ""))
    marker = note.find(" random-slice labels")
    words = note[:marker].split() if marker > 0 else []
    return int(words[-1]) if words and words[-1].isdigit() else DEFAULT_LABELS


def _reliable_estimate(alert: Alert) -> bool:
    """Whether the alert's harm is a label-free estimate that passed its reliability checks (``detectors.label_free``)."""
    stored = (alert.evidence or {}).get("harm") or {}
    return stored.get("source") == "accuracy_estimate" and stored.get("reliable") is True


def queue_alert_audit(session: Session, alert_id: int, labels: int | None, budget_of: Callable[[str], Budget],
                      now: datetime, seed: int | None = None, design: Design = "auto") -> AlertAudit:
    """Draw about ``labels`` (default: what the alert asks for) of the alert's window and queue them for its accuracy."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} not found")
    if labels is not None and labels < 1:
        raise Invalid("labels", f"must be at least 1, got {labels}")
    if design not in ("auto", "weighted", "uniform"):
        raise Invalid("design", f"must be auto, weighted or uniform, got {design!r}")
    run = session.get(DriftRun, alert.last_run_id)
    if run is None or run.window_start is None or run.window_end is None:
        raise Invalid("alert", f"alert {alert_id}'s run records no window to draw from")
    asked = labels or labels_asked(alert)
    weighted = design == "weighted" or (design == "auto" and _reliable_estimate(alert))
    # The same rows, and the same CBPE, alert_accuracy measures the draw on.
    rows = population(session, run, references.load(session, alert.model_version_id) if weighted else None)
    win, usable = rows.window, rows.usable
    rng = np.random.default_rng(seed)
    f = rows.predicted  # None unless weighted (no reference was read) or without a labeled reference
    if design == "weighted" and f is None:
        raise Invalid("design", "a weighted draw needs the version's reference with labels and probabilities")
    if f is None:
        inclusion = None
        order = rng.permutation(usable)[: min(asked, len(usable))]
    else:
        _refuse_a_second_weighted_draw(session, alert, win)
        probability = weighted_draw(f, asked)
        inclusion = dict(zip(usable.tolist(), probability.tolist(), strict=True))
        order = rng.permutation(usable[rng.random(len(usable)) < probability])
    return _queue(session, alert, win, usable, order, inclusion, asked, budget_of, now)


def _refuse_a_second_weighted_draw(session: Session, alert: Alert, win: Window) -> None:
    """One weighted draw per alert and window: two would overlap with probabilities neither records."""
    if not len(win):
        return
    tasks = session.scalars(select(LabelTask).where(LabelTask.prediction_id.in_(list(win.ids))))
    draws = [((t.evidence or {}).get(DRAWS_KEY) or {}).get(str(alert.id)) or {} for t in tasks]
    mine = sum(1 for draw in draws if draw.get("run") == alert.last_run_id)
    if mine:
        raise Conflict(f"alert {alert.id} already has a weighted draw of this window ({mine} rows queued): label those, "
                       "or add uniform labels with --design uniform")


def _queue(session: Session, alert: Alert, win: Window, usable: np.ndarray, order: np.ndarray,
           inclusion: dict[int, float] | None, asked: int, budget_of: Callable[[str], Budget], now: datetime) -> AlertAudit:
    """Queue the drawn rows in ``order`` until the budget stops it (a prefix of a random order is a random part)."""
    version = session.get(ModelVersion, alert.model_version_id)
    model = None if version is None else session.get(Model, version.model_id)
    assert version is not None and model is not None  # the alert's foreign keys
    room = max(budget_of(model.name).daily - queued_today(session, model.id, now), 0)
    ids = [win.ids[int(i)] for i in order]
    tasks = {t.prediction_id: t for t in session.scalars(select(LabelTask).where(LabelTask.prediction_id.in_(ids)))} if ids else {}
    picks: list[int] = []
    fresh: list[int] = []
    for i in order.tolist():
        if win.ids[i] not in tasks and len(fresh) == room:
            break  # stop, not skip: skipping would keep the rows already queued and bias what is left
        picks.append(i)
        if win.ids[i] not in tasks:
            fresh.append(i)
    design = "uniform" if inclusion is None else "weighted"
    mark: dict = {"slice": "audit", "alert": alert.id, "version": version.version}
    reason = "random" if inclusion is None else "weighted"

    def evidence(i: int, before: dict) -> dict:
        if inclusion is None:
            return {**before, **mark}
        drawn = {"p": inclusion[i], "drawn": len(order), "run": alert.last_run_id}  # its window's population only
        draws = {**(before.get(DRAWS_KEY) or {}), str(alert.id): drawn}
        return {**before, DRAWS_KEY: draws}

    candidates = WindowCandidates(win, usable, alert.model_version_id)
    queued = insert_candidates(session, [candidates.at(i, reason, PRIORITY_BASE[reason], evidence(i, mark)) for i in fresh], now)
    joined = in_slice = 0
    for i in picks:
        task = tasks.get(win.ids[i])
        if task is None:
            continue
        if inclusion is None and task.reason in UNIFORM_REASONS:
            in_slice += 1
            continue
        if inclusion is None:
            task.evidence, task.reason = {**evidence(i, task.evidence or {}), "also": task.reason}, "random"
        else:
            task.evidence = evidence(i, task.evidence or {})
        joined += 1
    session.flush()
    short = len(order) - len(picks)
    expected = "" if inclusion is None else f", each row with its own probability, {sum(inclusion.values()):.0f} expected"
    note = (f"drew {len(order)} of the window's {len(usable)} predictions with a stored input ({design}{expected}): {queued} queued, "
            f"{joined} already queued for another reason now count in the draw"
            + (f", {in_slice} were in the random slice already" if inclusion is None else ""))
    if short > 0:
        note += f"; {short} not queued: the daily labeling budget is spent (SHIFTWATCH_LABELING_DAILY_BUDGET)"
    if len(usable) < asked:
        note += f"; the window holds fewer than the {asked} asked for"
    if len(usable) < len(win):
        note += f"; {len(win) - len(usable)} of its predictions were logged without an input_ref and cannot be shown to a person"
    return AlertAudit(alert_id=alert.id, model_version_id=alert.model_version_id, design=design, window=len(usable),
                      asked=asked, drawn=len(picks), queued=queued, joined=joined, in_slice=in_slice,
                      budget_left=max(room - queued, 0), note=note)
