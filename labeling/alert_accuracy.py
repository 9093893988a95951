"""The alert's accuracy from labels as they arrive (issue 24): from the draw made for it, else its window's random slice.

A label-free estimate (or a confidence drop) is what an alert has when it opens. As soon as the
rows ``shiftwatch labeling audit`` drew for it with weights (``alert_audit``), or the queue's
uniformly drawn (``random``) rows of its window, carry labels, the alert's harm becomes the
measured one: from a weighted draw, the difference estimator (``intervals.weighted_accuracy``); from
the random slice, PPI++ (CBPE's per-sample P(correct) on the whole window, corrected by the labeled
slice; ``detectors.intervals``) with 20 or more labels and a labeled reference with
probabilities, the labels' own exact interval otherwise; against the labeled reference's accuracy
(its interval too: the drop's interval squares and adds both). Each new label refreshes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.queries import Window, window
from shiftwatch.detectors import alerts, references
from shiftwatch.detectors.accuracy import AccuracyEstimator
from shiftwatch.detectors.harm import Harm
from shiftwatch.detectors.intervals import MIN_LABELS, difference_interval, proportion_interval, weighted_accuracy
from shiftwatch.detectors.tables import Alert, DriftRun
from shiftwatch.labeling.queries import labeled_draw, labeled_outcomes


def _random_slice(
    session: Session, run: DriftRun, reference: references.ReferenceData
) -> tuple[float, tuple[float, float], str] | None:
    """The window's accuracy from its random slice, its 95 % interval and the method: PPI++ where it can run, else the
    labels alone; None without random-slice labels."""
    assert run.window_start is not None and run.window_end is not None
    audit = labeled_outcomes(session, run.model_version_id, start=run.window_start).random_slice(run.window_start, run.window_end)
    n = len(audit)
    if n == 0:
        return None
    if n >= MIN_LABELS and reference.probabilities is not None and reference.labels is not None:
        current = population(session, run, None).window
        position = {pid: i for i, pid in enumerate(current.ids)}
        found = [(position[pid], label) for pid, label in zip(audit.prediction_ids, audit.label) if pid in position]
        if current.probabilities is not None and len(found) >= MIN_LABELS and len(current) >= 2:
            rows, labels = np.asarray([i for i, _ in found]), np.asarray([label for _, label in found])
            estimator = AccuracyEstimator("cbpe").fit(reference.probabilities, reference.labels)
            powered = estimator.estimate_with_labels(current.probabilities, current.probabilities[rows], labels)
            how = "PPI++ (CBPE)" if powered.tuning > 0 else "the labels alone, exact interval"
            return powered.estimate, powered.interval, f"measured: {len(found)} random-slice labels, {how}"
    hits = audit.hits()
    return hits / n, proportion_interval(hits, n), f"measured: {n} random-slice labels alone, exact interval"


@dataclass(frozen=True, slots=True)
class Population:
    """What an alert's draw is made from and measured on: its run's window, the rows with a stored input (a person
    must see them), and CBPE's P(correct) of each of those (None without a labeled reference with probabilities)."""

    window: Window
    usable: np.ndarray  # positions in ``window``
    predicted: np.ndarray | None


def population(session: Session, run: DriftRun, reference: references.ReferenceData | None) -> Population:
    """The draw's population; ``alert_audit`` draws from it and ``_weighted`` measures on it, so both see the same rows."""
    assert run.window_start is not None and run.window_end is not None
    current = window(session, run.model_version_id, start=run.window_start, end=run.window_end + timedelta(microseconds=1))
    usable = np.asarray([i for i in range(len(current)) if current.input_ref[i] is not None], dtype=np.int64)
    predicted = None
    if reference is not None and reference.labels is not None and reference.probabilities is not None \
            and current.probabilities is not None and len(usable):
        estimator = AccuracyEstimator("cbpe").fit(reference.probabilities, reference.labels)
        predicted = estimator.predicted_correct(current.probabilities[usable])
    return Population(current, usable, predicted)


def _weighted(
    session: Session, alert_id: int, run: DriftRun, reference: references.ReferenceData
) -> tuple[float, tuple[float, float], str] | None:
    """The window's accuracy from the labels of the alert's weighted draw (``alert_audit``); None under MIN_LABELS."""
    assert run.window_start is not None and run.window_end is not None
    draws = labeled_draw(session, run.model_version_id, alert_id, run.id, run.window_start, run.window_end)
    if len(draws) < MIN_LABELS:
        return None
    rows = population(session, run, reference)
    if rows.predicted is None:
        return None
    position = {rows.window.ids[int(i)]: k for k, i in enumerate(rows.usable)}
    found = [(position[d.prediction_id], d) for d in draws if d.prediction_id in position]
    if len(found) < MIN_LABELS:
        return None
    inclusion = np.zeros(len(rows.usable))
    for k, d in found:
        inclusion[k] = d.inclusion
    labeled = np.asarray([k for k, _ in found])
    correct = np.asarray([float(d.predicted_class == d.label) for _, d in found])
    measured = weighted_accuracy(rows.predicted, inclusion, labeled, correct, drawn=max(d.drawn for _, d in found))
    return measured.estimate, measured.interval, f"measured: {len(found)} labels of a weighted draw (CBPE-guided), difference estimator"


def labeled_harm(session: Session, alert: Alert) -> Harm | None:
    """The alert's window's accuracy from its labels (a weighted draw's, else the random slice's) against the labeled
    reference's; None without both."""
    run = session.get(DriftRun, alert.last_run_id)
    if run is None or run.window_start is None or run.window_end is None:
        return None
    reference = references.load(session, alert.model_version_id)
    if reference is None or reference.labels is None:
        return None
    measured = _weighted(session, alert.id, run, reference) or _random_slice(session, run, reference)
    if measured is None:
        return None
    reference_hits = int(np.sum(reference.predicted_class == reference.labels))
    reference_accuracy = reference_hits / len(reference.labels)
    accuracy, (low, high), method = measured
    drop, drop_low, drop_high = difference_interval(
        (reference_accuracy, *proportion_interval(reference_hits, len(reference.labels))), (accuracy, low, high)
    )
    return Harm(
        points=100 * drop,
        source="labeled",
        method=method,
        interval=(100 * drop_low, 100 * drop_high),
        note=f"the reference's accuracy from its {len(reference.labels)} labels",
        accuracy=accuracy,
        accuracy_interval=(low, high),
        reference_accuracy=reference_accuracy,
    )


def refresh(session: Session, model_version_ids: Iterable[int], now: datetime, outbox: alerts.Outbox | None = None) -> list[int]:
    """Give every unresolved alert of these versions its labeled accuracy; the ids of the alerts it changed."""
    versions = sorted(set(model_version_ids))
    if not versions:
        return []
    stmt = select(Alert).where(Alert.model_version_id.in_(versions), Alert.open_key.is_not(None)).order_by(Alert.id)
    changed = []
    for alert in list(session.scalars(stmt)):
        measured = labeled_harm(session, alert)
        if measured is not None and alerts.record_harm(session, outbox, alert, measured, now):
            changed.append(alert.id)
    return changed
