"""What a scheduled labeled-accuracy run tests: the uniformly sampled labels of a window's predictions, as 0/1 correctness.

Only labels of rows the queue drew uniformly (``labeling.queries.is_uniform``) count: the
uncertain, flagged and disagreeing rows were picked because they looked hard, and their
accuracy is biased low. The reference's correctness is its own labels when it was pinned with
labels, else the uniform labels of the predictions in its time range. A window with fewer
labels than the test needs to see the configured minimum drop cannot be called quiet: unless
it already shows a significant drop of at least that minimum, its run says "too few labels:
N of M needed" and decides nothing.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from scipy import stats
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shiftwatch.collector.queries import Window
from shiftwatch.collector.tables import Prediction
from shiftwatch.detectors.base import AtypicalSample, Detector
from shiftwatch.detectors.concept import n_effective
from shiftwatch.detectors.configs import ConfigSpec, detector_class
from shiftwatch.detectors.effect import with_min_effect
from shiftwatch.detectors.intervals import MIN_LABELS
from shiftwatch.detectors.outcomes import Tested
from shiftwatch.detectors.references import ReferenceData
from shiftwatch.detectors.tables import ReferenceWindow
from shiftwatch.errors import ShiftwatchError
from shiftwatch.labeling.queries import labeled_outcomes
from shiftwatch.labeling.tables import UNIFORM_REASONS, Label, LabelTask

# The chance the test finds a drop of exactly the configured minimum: the usual 80 % of a power analysis.
POWER = 0.8
# Ids per IN query: well under every backend's bound-parameter limit.
IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Labeled predictions as 0/1 correctness, with the stream context their effective sample size needs."""

    correct: np.ndarray  # float64, 1.0 = the prediction matched its label
    stream_ids: list[str | None] | None  # None: not known (an uploaded reference), the labels count as independent
    timestamps: np.ndarray | None  # datetime64[us]
    rows: np.ndarray  # for a current window: each label's row in it (the flagged samples point there)
    source: str  # where the labels came from, for the run's evidence

    def __len__(self) -> int:
        return len(self.correct)

    def n_effective(self) -> float:
        """The labels' worth as independent ones: neighbouring frames of a stream tend to be right or wrong together."""
        if len(self) == 0:
            return 0.0
        return n_effective(self.correct, {"stream_ids": self.stream_ids, "timestamps": self.timestamps})


def current(session: Session, model_version_id: int, window: Window, start: datetime | None, end: datetime | None) -> Outcomes:
    """The uniform labels that arrived for the window's predictions (both ends in, as runs record the window)."""
    if len(window) == 0 or start is None or end is None:
        return _outcomes([], [], window, "uniform labels of the window")
    labeled = labeled_outcomes(session, model_version_id, start=start, end=end + timedelta(microseconds=1), reasons=UNIFORM_REASONS)
    position = {pid: i for i, pid in enumerate(window.ids)}
    found = [(position[pid], int(predicted == label)) for pid, predicted, label
             in zip(labeled.prediction_ids, labeled.predicted_class, labeled.label) if pid in position]  # fmt: skip
    return _outcomes([i for i, _ in found], [c for _, c in found], window, "uniform labels of the window")


def _outcomes(rows: list[int], correct: list[int], window: Window, source: str) -> Outcomes:
    index = np.asarray(rows, dtype=np.int64)
    return Outcomes(correct=np.asarray(correct, dtype=np.float64), stream_ids=[window.stream_id[i] for i in rows],
                    timestamps=window.ts[index], rows=index, source=source)  # fmt: skip


def reference(session: Session, ref_data: ReferenceData | None) -> Outcomes | None:
    """The reference's correctness: its pinned labels, else the uniform labels of its time range; None without either."""
    if ref_data is None:
        return None
    if ref_data.labels is not None:
        return Outcomes(correct=(ref_data.predicted_class == ref_data.labels).astype(np.float64),
                        stream_ids=ref_data.stream_ids, timestamps=ref_data.timestamps,
                        rows=np.arange(len(ref_data)), source="the reference's pinned labels")  # fmt: skip
    bounds = session.execute(
        select(ReferenceWindow.start, ReferenceWindow.end).where(ReferenceWindow.model_version_id == ref_data.model_version_id)
    ).first()
    if bounds is None or bounds.start is None or bounds.end is None:
        return None
    labeled = labeled_outcomes(session, ref_data.model_version_id, start=bounds.start, end=bounds.end + timedelta(microseconds=1),
                               reasons=UNIFORM_REASONS)  # fmt: skip
    if len(labeled) == 0:
        return None
    streams = _stream_ids(session, labeled.prediction_ids)
    return Outcomes(correct=(labeled.predicted_class == labeled.label).astype(np.float64),
                    stream_ids=[streams.get(pid) for pid in labeled.prediction_ids], timestamps=labeled.ts,
                    rows=np.arange(len(labeled)), source="uniform labels of the reference's time range")  # fmt: skip


def _stream_ids(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    """Each prediction's stream (a prediction retention dropped has none: it counts as its own stream)."""
    found: dict[uuid.UUID, str | None] = {}
    for start in range(0, len(ids), IN_CHUNK):
        stmt = select(Prediction.id, Prediction.stream_id).where(Prediction.id.in_(ids[start : start + IN_CHUNK]))
        found.update(session.execute(stmt).tuples().all())
    return found


def labels_mark(session: Session, model_version_id: int) -> str:
    """How many uniform labels the version has and the newest change: a run with the same mark would test the same labels."""
    stmt = (
        select(func.count(Label.id), func.max(Label.updated_at))
        .join(LabelTask, LabelTask.id == Label.task_id)
        .where(Label.model_version_id == model_version_id, LabelTask.reason.in_(UNIFORM_REASONS),
               Label.retired_at.is_(None))
    )
    count, newest = session.execute(stmt).one()
    return f"{count}@{newest}"


def labels_needed(reference_accuracy: float, n_reference: float, min_effect_points: float, alpha: float,
                  power: float = POWER) -> int | None:  # fmt: skip
    """Labels a window needs for the one-sided two-proportion test at ``alpha`` to find a drop of ``min_effect_points``
    with ``power`` (normal approximation); None when the reference's own labels are too few for any window."""
    drop = max(min_effect_points, 0.5) / 100.0  # below half a point no window of labels a person gives is enough
    p0 = min(max(reference_accuracy, 0.0), 1.0)
    p1 = max(p0 - drop, 0.0)
    z = float(stats.norm.isf(alpha) + stats.norm.isf(1.0 - power))
    room = (drop / z) ** 2 - p0 * (1.0 - p0) / max(n_reference, 1.0)
    if room <= 0:
        return None
    # A window whose accuracy is at the drop still varies a little: at least one label's worth of variance.
    return max(1, math.ceil(max(p1 * (1.0 - p1), 1.0 / 100) / room))


def test(
    config: ConfigSpec, registry: Mapping[str, type[Detector]], ref: Outcomes | None, cur: Outcomes
) -> Tested:
    """A labeled detector's run: fitted on the reference's correctness now (cheap), tested on the window's, or why not.

    Below the labels the test needs (``labels_needed``) a significant drop of at least the minimum
    still pages -- the test holds alpha at any size, and a 20-point fall shows in 50 labels -- but
    anything else is "too few labels", never a quiet verdict: so few labels cannot say nothing moved.
    """
    if ref is None or len(ref) == 0:
        return Tested(note="no labels for the reference: pin it with labels, or label the uniform slice of its time range")
    started = time.perf_counter()
    try:
        context = {"stream_ids": ref.stream_ids, "timestamps": ref.timestamps}
        detector = detector_class(config.detector, registry)(**config.params).fit(ref.correct, **context)
        min_effect = config.min_effect if config.min_effect is not None else float(detector.min_effect_size or 0.0)
        needed = labels_needed(float(ref.correct.mean()), ref.n_effective(), min_effect, config.alpha)
        short = _too_few(ref, cur, needed, min_effect)
        if len(cur) < MIN_LABELS:
            return Tested(note=short)
        result = detector.test(cur.correct, stream_ids=cur.stream_ids, timestamps=cur.timestamps)
    except ShiftwatchError as exc:
        return Tested(note=f"cannot test: {exc.message}"[:500])
    if short and not (result.p_value is not None and result.p_value <= config.alpha and with_min_effect(result, min_effect).drift):
        return Tested(note=short, duration_ms=(time.perf_counter() - started) * 1000)
    wrong = [AtypicalSample(index=int(row), score=1.0, reason="labeled wrong in the uniform slice")
             for row, right in zip(cur.rows, cur.correct) if not right]  # fmt: skip
    evidence = {**result.evidence, "labels": {"n": len(cur), "needed": needed, "source": cur.source,
                                              "reference_n": len(ref), "reference_source": ref.source}}  # fmt: skip
    result = replace(result, evidence=evidence, atypical=tuple(wrong))
    return Tested(result=result, duration_ms=(time.perf_counter() - started) * 1000)


def _too_few(ref: Outcomes, cur: Outcomes, needed: int | None, min_effect: float) -> str:
    """Why these labels cannot call the window quiet ("" when they can): the note of a run that decides nothing."""
    if needed is None:
        return (f"too few reference labels: {len(ref)} cannot show a {min_effect:g}-point accuracy drop at {POWER:.0%} "
                "power in any window; label more of its uniform slice or raise min_effect")  # fmt: skip
    worth = cur.n_effective()
    if worth >= needed and len(cur) >= MIN_LABELS:
        return ""
    effective = f" ({worth:.0f} effective: frames of one stream are right or wrong together)" if worth < len(cur) - 0.5 else ""
    return f"too few labels: {len(cur)} of {needed} needed{effective}"
