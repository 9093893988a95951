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
from shiftwatch.detectors.effect import verdict_of, with_min_effect
from shiftwatch.detectors.models import DetectorConfig, DetectorState, DriftRun, FlaggedSample
from shiftwatch.detectors.reports import write_drift_report
from shiftwatch.detectors.two_sample import state_from_npz, state_to_npz
from shiftwatch.errors import ShiftwatchError
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
    verdict: DriftResult | None = None  # the result under the config's min_effect
    note: str | None = None
    new_state: bytes | None = None
    min_effect: float | None = None  # a config's explicit practical threshold; None: the detector's rule
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
    state: tuple[str, bytes] | None,
    key: str,
) -> Detector:
    """The fitted detector: restored from its persisted state when the fit key matches, else fitted now."""
    config = outcome.config
    cls = detector_class(config.detector, registry)
    if state is not None and state[0] == key and hasattr(cls, "from_state"):
        return cls.from_state(dict(config.params), state_from_npz(state[1]))  # type: ignore[attr-defined]
    context = {"stream_ids": ref_data.stream_ids, "timestamps": ref_data.timestamps}
    if ref_data.labels is not None:
        context["labels"] = ref_data.labels
    detector = cls(**config.params).fit(reference, **context)
    if hasattr(detector, "get_state"):
        outcome.new_state = state_to_npz(detector.get_state())  # type: ignore[attr-defined]
    return detector


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What the read phase hands to the compute phase (no ORM objects tied to an open session)."""

    reference: references.ReferenceData | None
    states: dict[int, tuple[str, bytes]]  # config id -> (fit key, npz bytes)
    class_names: list[str]
    alerting: frozenset[int]  # configs whose flagged run would open or update an alert


def _read(
    session: Session, configs: list[DetectorConfig], now: datetime, tick: datetime
) -> tuple[_Inputs, list[_Outcome]]:
    """The read phase: reference, fitted states, current windows (shared by configs with the same spec)."""
    version = session.get(ModelVersion, configs[0].model_version_id)
    model = session.get(Model, version.model_id) if version is not None else None
    states = session.scalars(select(DetectorState).where(DetectorState.config_id.in_([c.id for c in configs])))
    inputs = _Inputs(
        reference=references.load(session, configs[0].model_version_id),
        states={s.config_id: (s.fit_key, s.state) for s in states},
        class_names=list(model.class_names) if model is not None else [],
        alerting=frozenset(c.id for c in configs if alerts.would_alert(session, c, tick)),
    )
    windows: dict[tuple[int | None, int | None], tuple[Window, datetime | None, datetime | None]] = {}
    outcomes = []
    for config in configs:
        spec = (config.window_last_n, config.window_minutes)
        if spec not in windows:
            windows[spec] = _current_window(session, config, now)
        outcome = _Outcome(config=config)
        outcome.window, outcome.window_start, outcome.window_end = windows[spec]
        outcomes.append(outcome)
    return inputs, outcomes


def _test_all(outcomes: list[_Outcome], inputs: _Inputs, registry: Mapping[str, type[Detector]]) -> None:
    """The compute phase: fit or restore each detector and test its window; outside any transaction."""
    ref_data = inputs.reference
    for outcome in outcomes:
        config, window = outcome.config, outcome.window
        assert window is not None
        current = _array(window, config.input)
        reference = None if ref_data is None else _array(ref_data, config.input)
        if ref_data is None:
            outcome.note = "no reference window pinned for this model version"
        elif reference is None or (current is None and len(window) > 0):
            outcome.note = f"no {config.input} in the reference or the current window"
        elif len(window) < MIN_CURRENT:
            outcome.note = f"{len(window)} predictions in the window, fewer than {MIN_CURRENT}"
        else:
            started = time.perf_counter()
            key = fit_key(config, ref_data.fingerprint)
            try:
                detector = _detector(outcome, registry, reference, ref_data, inputs.states.get(config.id), key)
                outcome.result = detector.test(current, stream_ids=window.stream_id, timestamps=window.ts)
            except ShiftwatchError as exc:  # the data or config cannot be tested (e.g. no reference labels): say so
                outcome.note, outcome.new_state = f"cannot test: {exc.message}"[:500], None
                continue
            outcome.min_effect = config.min_effect
            outcome.duration_ms = (time.perf_counter() - started) * 1000


def _decide(outcomes: list[_Outcome], ref_data: references.ReferenceData | None) -> None:
    """Holm across the version's detectors at this tick, the detector's drift verdict, and harm."""
    tested = [o for o in outcomes if o.result is not None]
    adjusted = multiple_testing.holm_adjust([o.result.p_value for o in tested])  # type: ignore[union-attr]
    estimates = [o.result.effect_size for o in tested if harm.is_accuracy_estimate(o.result.effect_unit)]  # type: ignore[union-attr]
    for outcome, adjusted_p in zip(tested, adjusted):
        result = outcome.result
        assert result is not None
        outcome.adjusted_p = adjusted_p
        is_significant = multiple_testing.significant(adjusted_p, outcome.config.alpha, bool(result.drift))
        # Holm decides significance across the version's detectors; the detector's ``drift`` (its
        # effect rule, detectors.effect, under the config's explicit min_effect if any) decides
        # whether a significant shift is worth a page.
        outcome.verdict = with_min_effect(result, outcome.min_effect)
        outcome.decision = is_significant and bool(outcome.verdict.drift)
        if estimates:
            outcome.harm = harm.Harm(points=float(max(estimates)), source="accuracy_estimate")
        elif ref_data is not None and outcome.window is not None:
            outcome.harm = harm.confidence_drop(ref_data.confidence, outcome.window.confidence)


def _explain(outcome: _Outcome, ref_data: references.ReferenceData) -> None:
    """Evidence of a flagged run: the most shifted embedding dimensions and the most atypical samples."""
    window, result = outcome.window, outcome.result
    assert window is not None and result is not None
    if ref_data.embeddings is not None and window.embeddings is not None:
        outcome.summary["shifted_dimensions"] = evidence.shifted_dimensions(ref_data.embeddings, window.embeddings)
    outcome.atypical = evidence.detector_atypical(result, len(window))
    if not outcome.atypical:
        if ref_data.embeddings is not None and window.embeddings is not None:
            scores = evidence.knn_scores(ref_data.embeddings, window.embeddings)
        else:  # outputs only: the least confident predictions are the least typical
            scores = 1.0 - window.confidence
        outcome.atypical = evidence.atypical_samples(scores)
    outcome.summary["atypical_samples"] = [
        {"prediction_id": str(window.ids[s.index]), "input_ref": window.input_ref[s.index], "score": round(s.score, 4)}
        for s in outcome.atypical
    ]


def _render_report(
    outcome: _Outcome, ref_data: references.ReferenceData, class_names: list[str], settings: Settings, tick: datetime
) -> None:
    """The Evidently report an alert links to (written before the transaction; a retried tick overwrites it)."""
    window = outcome.window
    assert window is not None
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
            run.evidence = evidence.to_jsonable(
                {**result.evidence, "verdict": verdict_of(outcome.verdict or result, run.decision)}
            )
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
        inputs, outcomes = _read(session, configs, now, tick)
    _test_all(outcomes, inputs, registry)
    ref_data = inputs.reference
    _decide(outcomes, ref_data)
    for outcome in outcomes:
        if outcome.decision:
            _explain(outcome, ref_data)  # type: ignore[arg-type]
            if outcome.config.id in inputs.alerting:  # only runs that open or update an alert need a report
                _render_report(outcome, ref_data, inputs.class_names, settings, tick)  # type: ignore[arg-type]
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
