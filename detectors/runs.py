"""Scheduled drift runs: for every due config, test its current window against the pinned reference.

One model version at a time, in three phases: read (reference, fitted states, windows) in a
short transaction; compute (fit only when the reference or params changed, test, Holm across
the version's detectors, evidence, Evidently report) outside any transaction; write every run,
state, flagged sample, alert change and webhook delivery in ONE transaction. An exception
anywhere leaves nothing behind for that version; its configs stay due and run on the next tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shiftwatch.collector import queries
from shiftwatch.collector.models import Model, ModelVersion
from shiftwatch.collector.queries import Window
from shiftwatch.db import Database
from shiftwatch.detectors import alerts, evidence, harm, multiple_testing, references
from shiftwatch.detectors.base import Detector, DriftResult
from shiftwatch.detectors.configs import detector_class, fit_key
from shiftwatch.detectors.models import DetectorConfig, DetectorState, DriftRun, FlaggedSample
from shiftwatch.detectors.reports import write_drift_report
from shiftwatch.detectors.state import dump_state, load_state
from shiftwatch.scheduler import tick_of
from shiftwatch.settings import Settings

log = logging.getLogger(__name__)

# Fewer current samples than this: the run is recorded as skipped, not tested.
MIN_CURRENT = 30


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one call of ``run_due_detectors`` (or one model version of it) did; ids of alerts touched."""

    tick: datetime
    runs: int = 0
    flagged: int = 0
    opened: tuple[int, ...] = ()
    updated: tuple[int, ...] = ()
    failed_versions: tuple[int, ...] = ()

    def __add__(self, other: "TickReport") -> "TickReport":
        return TickReport(
            tick=self.tick,
            runs=self.runs + other.runs,
            flagged=self.flagged + other.flagged,
            opened=self.opened + other.opened,
            updated=self.updated + other.updated,
            failed_versions=self.failed_versions + other.failed_versions,
        )


@dataclass(slots=True)
class _Outcome:
    config: DetectorConfig
    window: Window | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    result: DriftResult | None = None
    note: str | None = None
    new_state: bytes | None = None
    duration_ms: float = 0.0
    adjusted_p: float | None = None
    decision: bool = False
    harm: harm.Harm | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    atypical: list[evidence.AtypicalSample] = field(default_factory=list)
    report_path: Path | None = None


def _due(session: Session, tick: datetime) -> list[DetectorConfig]:
    last = dict(session.execute(select(DriftRun.config_id, func.max(DriftRun.tick)).group_by(DriftRun.config_id)).all())
    configs = session.scalars(
        select(DetectorConfig).where(DetectorConfig.enabled.is_(True)).order_by(DetectorConfig.id)
    )
    due = []
    for config in configs:
        previous = last.get(config.id)
        if previous is not None and previous.tzinfo is None:  # SQLite aggregate bypasses UtcDateTime
            previous = previous.replace(tzinfo=timezone.utc)
        if previous is None or previous + timedelta(seconds=config.schedule_seconds) <= tick:
            due.append(config)
    return due


def _array(source: Any, kind: str) -> np.ndarray | None:
    return getattr(source, kind, None)


def _current_window(
    session: Session, config: DetectorConfig, now: datetime
) -> tuple[Window, datetime | None, datetime | None]:
    if config.window_minutes is not None:
        start = now - timedelta(minutes=config.window_minutes)
        return queries.window(session, config.model_version_id, start=start, end=now), start, now
    window = queries.window(session, config.model_version_id, end=now, last_n=config.window_last_n)
    if len(window) == 0:
        return window, None, None
    bounds = [datetime.fromisoformat(str(t)).replace(tzinfo=timezone.utc) for t in (window.ts[0], window.ts[-1])]
    return window, bounds[0], bounds[1]


def _detector(
    outcome: _Outcome,
    registry: Mapping[str, type[Detector]],
    reference: np.ndarray,
    ref_data: Any,
    state: DetectorState | None,
    key: str,
) -> Detector:
    """The fitted detector: restored from its persisted state when the fit key matches, else fitted now."""
    config = outcome.config
    cls = detector_class(config.detector, registry)
    if state is not None and state.fit_key == key and hasattr(cls, "from_state"):
        return cls.from_state(dict(config.params), load_state(state.state))  # type: ignore[attr-defined]
    context = {} if ref_data.labels is None else {"labels": ref_data.labels}
    detector = cls(**config.params).fit(reference, **context)
    if hasattr(detector, "get_state"):
        outcome.new_state = dump_state(detector.get_state())  # type: ignore[attr-defined]
    return detector


def _test_all(
    session: Session, configs: list[DetectorConfig], now: datetime, registry: Mapping[str, type[Detector]]
) -> tuple[list[_Outcome], references.ReferenceData | None]:
    ref_data = references.load(session, configs[0].model_version_id)
    states = {
        s.config_id: s
        for s in session.scalars(select(DetectorState).where(DetectorState.config_id.in_([c.id for c in configs])))
    }
    windows: dict[tuple[int | None, int | None], tuple[Window, datetime | None, datetime | None]] = {}
    outcomes = []
    for config in configs:
        spec = (config.window_last_n, config.window_minutes)
        if spec not in windows:
            windows[spec] = _current_window(session, config, now)
        outcome = _Outcome(config=config)
        outcome.window, outcome.window_start, outcome.window_end = windows[spec]
        outcomes.append(outcome)
        current = _array(outcome.window, config.input)
        reference = None if ref_data is None else _array(ref_data, config.input)
        if ref_data is None:
            outcome.note = "no reference window pinned for this model version"
        elif reference is None or (current is None and len(outcome.window) > 0):
            outcome.note = f"no {config.input} in the reference or the current window"
        elif len(outcome.window) < MIN_CURRENT:
            outcome.note = f"{len(outcome.window)} predictions in the window, fewer than {MIN_CURRENT}"
        else:
            started = time.perf_counter()
            detector = _detector(
                outcome, registry, reference, ref_data, states.get(config.id), fit_key(config, ref_data.fingerprint)
            )
            outcome.result = detector.test(current, stream_ids=outcome.window.stream_id, timestamps=outcome.window.ts)
            outcome.duration_ms = (time.perf_counter() - started) * 1000
    return outcomes, ref_data


def _decide(outcomes: list[_Outcome], ref_data: references.ReferenceData | None) -> None:
    """Holm across the version's detectors at this tick, the practical threshold, and harm."""
    tested = [o for o in outcomes if o.result is not None]
    adjusted = multiple_testing.holm_adjust([o.result.p_value for o in tested])  # type: ignore[union-attr]
    estimates = [o.result.effect_size for o in tested if harm.is_accuracy_estimate(o.result.effect_unit)]  # type: ignore[union-attr]
    for outcome, adjusted_p in zip(tested, adjusted):
        result = outcome.result
        assert result is not None
        outcome.adjusted_p = adjusted_p
        is_significant = multiple_testing.significant(adjusted_p, outcome.config.alpha, bool(result.drift))
        large = bool(np.isfinite(result.effect_size)) and result.effect_size >= outcome.config.min_effect
        outcome.decision = is_significant and large
        if estimates:
            outcome.harm = harm.Harm(points=float(max(estimates)), source="accuracy_estimate")
        elif ref_data is not None and outcome.window is not None:
            outcome.harm = harm.confidence_drop(ref_data.confidence, outcome.window.confidence)


def _explain(
    outcome: _Outcome, ref_data: references.ReferenceData, class_names: list[str], settings: Settings, tick: datetime
) -> None:
    """Evidence and the Evidently report of a flagged run (written before the transaction; a retry overwrites it)."""
    window, result = outcome.window, outcome.result
    assert window is not None and result is not None
    scores = evidence.detector_sample_scores(result.evidence, len(window))
    if ref_data.embeddings is not None and window.embeddings is not None:
        outcome.summary["shifted_dimensions"] = evidence.shifted_dimensions(ref_data.embeddings, window.embeddings)
        if scores is None:
            scores = evidence.knn_scores(ref_data.embeddings, window.embeddings)
    if scores is None:  # outputs only: the least confident predictions are the least typical
        scores = 1.0 - window.confidence
    outcome.atypical = evidence.atypical_samples(scores)
    outcome.summary["atypical_samples"] = [
        {"prediction_id": str(window.ids[s.index]), "input_ref": window.input_ref[s.index], "score": round(s.score, 4)}
        for s in outcome.atypical
    ]
    name = f"drift-{outcome.config.id}-{tick.strftime('%Y%m%dT%H%M%SZ')}.html"
    outcome.report_path = write_drift_report(
        Path(settings.data_dir) / "reports" / name,
        reference={
            "confidence": ref_data.confidence,
            "predicted_class": ref_data.predicted_class,
            "probabilities": ref_data.probabilities,
            "embeddings": ref_data.embeddings,
        },
        current={
            "confidence": window.confidence,
            "predicted_class": window.predicted_class,
            "probabilities": window.probabilities,
            "embeddings": window.embeddings,
        },
        class_names=class_names,
    )


def _write(
    session: Session, settings: Settings, outcomes: list[_Outcome], ref_data: Any, tick: datetime, now: datetime
) -> TickReport:
    opened: list[int] = []
    updated: list[int] = []
    for outcome in outcomes:
        config, result, window = outcome.config, outcome.result, outcome.window
        run = DriftRun(
            config_id=config.id,
            model_version_id=config.model_version_id,
            detector=config.detector,
            tick=tick,
            status="ok" if result is not None else "skipped",
            note=outcome.note,
            adjusted_p_value=outcome.adjusted_p,
            decision=outcome.decision,
            estimated_harm=None if outcome.harm is None else outcome.harm.points,
            window_start=outcome.window_start,
            window_end=outcome.window_end,
            n_reference=0 if ref_data is None else len(ref_data),
            n_current=0 if window is None else len(window),
            duration_ms=outcome.duration_ms,
            evidence={},
        )
        if result is not None:
            run.statistic, run.p_value, run.threshold = result.statistic, result.p_value, result.threshold
            run.detector_drift, run.effect_size, run.effect_unit = (
                bool(result.drift),
                result.effect_size,
                result.effect_unit,
            )
            run.n_reference, run.n_current = result.n_reference, result.n_current
            run.evidence = evidence.to_jsonable(result.evidence)
        session.add(run)
        if outcome.new_state is not None:
            _save_state(session, config, outcome.new_state, fit_key(config, ref_data.fingerprint), now)
        session.flush()
        if not outcome.decision:
            continue
        _flag_samples(session, outcome, run)
        change = alerts.apply_run(
            session,
            settings,
            config=config,
            run=run,
            estimate=outcome.harm,
            summary={**outcome.summary, "detector": run.evidence},
            report_path=None if outcome.report_path is None else str(outcome.report_path),
            now=now,
        )
        if change is not None:
            (opened if change.event == "alert.opened" else updated).append(change.alert_id)
    flagged = sum(o.decision for o in outcomes)
    return TickReport(tick=tick, runs=len(outcomes), flagged=flagged, opened=tuple(opened), updated=tuple(updated))


def _save_state(session: Session, config: DetectorConfig, blob: bytes, key: str, now: datetime) -> None:
    row = session.scalar(select(DetectorState).where(DetectorState.config_id == config.id))
    if row is None:
        row = DetectorState(config_id=config.id)
        session.add(row)
    row.fit_key, row.state, row.fitted_at = key, blob, now


def _flag_samples(session: Session, outcome: _Outcome, run: DriftRun) -> None:
    window = outcome.window
    assert window is not None
    reason = f"{outcome.config.name}: among the samples least like the reference (drift run {run.id})"
    for sample in outcome.atypical:
        ts = datetime.fromisoformat(str(window.ts[sample.index])).replace(tzinfo=timezone.utc)
        session.add(
            FlaggedSample(
                prediction_id=window.ids[sample.index],
                ts=ts,
                model_version_id=run.model_version_id,
                input_ref=window.input_ref[sample.index],
                score=sample.score,
                reason=reason[:500],
                drift_run_id=run.id,
            )
        )


def run_version(
    db: Database,
    settings: Settings,
    configs: list[DetectorConfig],
    tick: datetime,
    now: datetime,
    registry: Mapping[str, type[Detector]],
) -> TickReport:
    """Run the due configs of one model version; all of it is written in one transaction, or nothing."""
    with db.session() as session:
        outcomes, ref_data = _test_all(session, configs, now, registry)
        version = session.get(ModelVersion, configs[0].model_version_id)
        model = session.get(Model, version.model_id) if version is not None else None
        class_names = list(model.class_names) if model is not None else []
    _decide(outcomes, ref_data)
    for outcome in outcomes:
        if outcome.decision:
            _explain(outcome, ref_data, class_names, settings, tick)  # type: ignore[arg-type]
    with db.session() as session:
        for outcome in outcomes:
            outcome.config = session.merge(outcome.config, load=False)
        return _write(session, settings, outcomes, ref_data, tick, now)


def run_due_detectors(
    db: Database, settings: Settings, now: datetime, *, registry: Mapping[str, type[Detector]] | None = None
) -> TickReport:
    """Run every enabled config whose schedule has come round by ``now``; one failing version never stops the others."""
    from shiftwatch.detectors.configs import default_registry

    registry = default_registry() if registry is None else registry
    tick = tick_of(now, settings.detector_tick_seconds)
    with db.session() as session:
        due = _due(session, tick)
    by_version: dict[int, list[DetectorConfig]] = {}
    for config in due:
        by_version.setdefault(config.model_version_id, []).append(config)
    total = TickReport(tick=tick)
    for version_id, configs in by_version.items():
        try:
            total = total + run_version(db, settings, configs, tick, now, registry)
        except Exception:
            log.exception(
                "drift runs of model version %s failed at %s; retried next tick", version_id, tick.isoformat()
            )
            total = total + TickReport(tick=tick, failed_versions=(version_id,))
    return total
