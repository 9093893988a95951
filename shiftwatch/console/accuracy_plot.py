"""The alert page's accuracy over time: the estimate in its interval beside the accuracy realized on labels.

NannyML's picture of estimated vs realized performance. The estimate comes from the version's
``accuracy_drop`` runs (CBPE/ATC, with their interval); without one the line is the window's
mean confidence, named as such: it is not an accuracy (issue 24). Realized accuracy is measured per tested window where labels have
come in, over the labeling queue's random slice only: the other queued samples were picked for
looking hard, so their accuracy is biased low. It carries the exact interval every labeled
accuracy gets (``detectors.intervals.proportion_interval``): 5 of 5 right is not 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.console import svg
from shiftwatch.detectors import references
from shiftwatch.detectors.intervals import proportion_interval
from shiftwatch.detectors.tables import DriftRun
from shiftwatch.labeling.queries import labeled_outcomes

MIN_REALIZED_LABELS = 5  # random-slice labels a window needs before its realized accuracy is drawn


@dataclass(frozen=True, slots=True)
class AccuracyPoint:
    """One tested window: estimated accuracy (%) with its interval, and realized accuracy (%) where labeled."""

    tick: datetime
    estimated: float
    low: float | None
    high: float | None
    realized: float | None
    n_labels: int  # random-slice labels among the window's predictions
    realized_low: float | None = None  # the realized accuracy's 95 % interval (exact binomial), %
    realized_high: float | None = None


@dataclass(frozen=True, slots=True)
class _Estimate:
    """One run's accuracy estimate (%) and the window it was made on."""

    tick: datetime
    start: datetime | None
    end: datetime | None
    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class LabeledPoint:
    """The alert's labeled (prediction-powered) accuracy, %, with its interval, as it stood at ``at``."""

    at: datetime
    accuracy: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class AccuracyHistory:
    method: str  # how the estimate was made, for the caption
    points: list[AccuracyPoint]
    is_accuracy: bool = True  # False: the line is mean confidence (no accuracy estimator on the version)
    labeled: tuple[LabeledPoint, ...] = ()  # the alert's labeled accuracy each time new labels refreshed it


def labeled_points(harm_history: list[dict] | None) -> tuple[LabeledPoint, ...]:
    """The labeled entries of an alert's harm history (``alerts.harm_entry``) as plot points."""
    points = []
    for entry in harm_history or []:
        interval = entry.get("accuracy_interval")
        if entry.get("source") == "labeled" and entry.get("accuracy") is not None and interval:
            points.append(LabeledPoint(datetime.fromisoformat(entry["at"]), 100 * float(entry["accuracy"]),
                                       100 * float(interval[0]), 100 * float(interval[1])))
    return tuple(points)


def _reference_confidence(session: Session, version_id: int) -> float | None:
    """The reference's mean confidence: what the runs' confidence drop is taken from."""
    data = references.load(session, version_id)
    if data is None or len(data) == 0:
        return None
    return float(np.mean(data.confidence))


def _run_estimates(runs: list[DriftRun]) -> tuple[str, list[_Estimate]]:
    """Each run's own label-free accuracy estimate (the harm it stored) in its interval; empty where runs stored none."""
    rows, method = [], ""
    for run in runs:
        stored = (run.evidence or {}).get("harm") or {}
        if stored.get("source") != "accuracy_estimate" or stored.get("accuracy") is None:
            continue
        low, high = stored.get("accuracy_interval") or (None, None)
        rows.append(_Estimate(run.tick, run.window_start, run.window_end, 100 * float(stored["accuracy"]),
                              None if low is None else 100 * float(low), None if high is None else 100 * float(high)))
        method = str(stored.get("method") or "label-free")
    return method, rows


def _estimates(session: Session, version_id: int, runs: list[DriftRun], origin: datetime) -> tuple[str, list[_Estimate]]:
    """The method's name and one estimate per run ("" and mean confidence per run without an accuracy estimator)."""
    method, rows = _run_estimates(runs)
    if rows:
        return method, rows
    estimated = list(
        session.scalars(
            select(DriftRun)
            .where(DriftRun.model_version_id == version_id, DriftRun.detector == "accuracy_drop",
                   DriftRun.status == "ok", DriftRun.tick >= origin)
            .order_by(DriftRun.tick)
        )
    )
    if estimated:
        rows = []
        for run in estimated:
            interval = (run.evidence or {}).get("interval") or (None, None)
            low, high = (None if v is None else 100 * float(v) for v in interval)
            rows.append(_Estimate(run.tick, run.window_start, run.window_end, 100 * float(run.statistic or 0.0), low, high))
        method = str((estimated[-1].evidence or {}).get("method", "label-free")).upper()
        return method, rows
    level = _reference_confidence(session, version_id)
    if level is None:
        return "", []
    rows = [_Estimate(r.tick, r.window_start, r.window_end, 100 * level - r.estimated_harm)
            for r in runs if r.estimated_harm is not None]
    return "", rows


def history(session: Session, version_id: int, runs: list[DriftRun], origin: datetime,
            harm_history: list[dict] | None = None) -> AccuracyHistory | None:
    """Estimated and realized accuracy per tested window since ``origin``, and the alert's labeled accuracy over time."""
    method, rows = _estimates(session, version_id, runs, origin)
    if not rows:
        return None
    starts = [row.start for row in rows if row.start is not None]
    labeled = labeled_outcomes(session, version_id, start=min(starts)) if starts else None
    points = []
    for row in rows:
        realized, n = None, 0
        interval: tuple[float | None, float | None] = (None, None)
        if labeled is not None and row.start is not None and row.end is not None:
            audit = labeled.random_slice(row.start, row.end)
            n = len(audit)
            if n >= MIN_REALIZED_LABELS:
                hits = audit.hits()
                realized = 100 * hits / n
                low, high = proportion_interval(hits, n)
                interval = (100 * low, 100 * high)
        points.append(AccuracyPoint(row.tick, row.value, row.low, row.high, realized, n, *interval))
    return AccuracyHistory(method or "nothing: no accuracy_drop detector", points, is_accuracy=bool(method),
                           labeled=labeled_points(harm_history))


def chart(accuracy: AccuracyHistory, origin: datetime, x_label: str, markers: list[svg.Marker]) -> str:
    """Estimated accuracy as a line in its interval band, realized accuracy as dots with their interval where labeled."""
    hours = [(p.tick - origin).total_seconds() / 3600 for p in accuracy.points]
    nan = float("nan")
    banded = any(p.low is not None for p in accuracy.points)
    series = [
        svg.Series(
            "estimated, %" if accuracy.is_accuracy else "mean confidence (not accuracy), %", hours, [p.estimated for p in accuracy.points],
            low=[nan if p.low is None else p.low for p in accuracy.points] if banded else None,
            high=[nan if p.high is None else p.high for p in accuracy.points] if banded else None,
        )
    ]
    realized = [(h, p) for h, p in zip(hours, accuracy.points) if p.realized is not None]
    if realized:
        series.append(svg.Series(
            "realized, %", [h for h, _ in realized], [float(p.realized or 0.0) for _, p in realized], dots=True,
            low=[nan if p.realized_low is None else p.realized_low for _, p in realized],
            high=[nan if p.realized_high is None else p.realized_high for _, p in realized],
        ))
    if accuracy.labeled:
        series.append(svg.Series(
            "labeled estimate (prediction-powered), %", [(p.at - origin).total_seconds() / 3600 for p in accuracy.labeled],
            [p.accuracy for p in accuracy.labeled], low=[p.low for p in accuracy.labeled], high=[p.high for p in accuracy.labeled],
        ))
    return svg.line_chart(series, title="Accuracy over time: estimated vs realized", x_label=x_label,
                          y_label="accuracy, %", markers=markers)


def caption(estimated: AccuracyHistory) -> str:
    """The plot in words: which method estimated, and how many labeled windows the realized dots stand on."""
    labeled = [p for p in estimated.points if p.realized is not None]
    realized = (
        f"realized accuracy (dots, with their exact 95 % interval) on {len(labeled)} window(s) with at least {MIN_REALIZED_LABELS} "
        f"labels of the random labeling slice ({sum(p.n_labels for p in labeled)} labels)"
        if labeled else
        f"no realized accuracy yet: no tested window has {MIN_REALIZED_LABELS} labels of the random labeling slice"
    )
    if estimated.labeled:
        last = estimated.labeled[-1]
        realized += (f"; the alert's labeled accuracy (prediction-powered on the random slice, band: its 95 % interval) "
                     f"updated {len(estimated.labeled)} time(s) as labels arrived, now {last.accuracy:.1f} % "
                     f"({last.low:.1f} to {last.high:.1f})")
    if not estimated.is_accuracy:
        return ("No accuracy estimate without labels: the line is the window's mean confidence, which is not accuracy "
                "(an accuracy_drop detector on a labeled reference estimates one, with an interval); " + realized + ".")
    return f"Estimated accuracy by {estimated.method} (line, with its interval where the method gives one); {realized}."
