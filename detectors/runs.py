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
from dataclasses import dataclass
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
from shiftwatch.detectors import alerts, evidence, freshness, harm, multiple_testing, references
from shiftwatch.detectors.base import Detector, DriftResult
from shiftwatch.detectors.configs import detector_class, fit_key
from shiftwatch.detectors.effect import with_min_effect
from shiftwatch.detectors.models import DetectorConfig, DetectorState, DriftRun
from shiftwatch.detectors.outcomes import Outcome, TickReport
from shiftwatch.detectors.reports import remove_reports, render_window_report
from shiftwatch.detectors.run_write import record_quiet, write_outcomes
from shiftwatch.detectors.two_sample import state_from_npz, state_to_npz
from shiftwatch.errors import ShiftwatchError
from shiftwatch.scheduler import tick_of
from shiftwatch.settings import Settings

log = logging.getLogger(__name__)

# Fewer current samples than this: the run is recorded as skipped, not tested.
MIN_CURRENT = 30


# Versions nobody serves any more are not watched (their windows never change).
UNWATCHED_STATES = ("retired",)


def _due(session: Session, tick: datetime) -> list[DetectorConfig]:
    last = dict(session.execute(select(DriftRun.config_id, func.max(DriftRun.tick)).group_by(DriftRun.config_id)).all())
    configs = session.scalars(
        select(DetectorConfig)
        .join(ModelVersion, ModelVersion.id == DetectorConfig.model_version_id)
        .where(DetectorConfig.enabled.is_(True), ModelVersion.state.not_in(UNWATCHED_STATES))
        .order_by(DetectorConfig.id)
    )
    due = []
    for config in configs:
        previous = last.get(config.id)
        if previous is not None and previous.tzinfo is None:  # SQLite aggregate bypasses UtcDateTime
            previous = previous.replace(tzinfo=timezone.utc)
        if config.checked_at is not None and (previous is None or config.checked_at > previous):
            previous = config.checked_at  # the last quiet check counts as the last run for the schedule
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
    outcome: Outcome,
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
        return cls.from_state(dict(config.params), state_from_npz(state[1]))
    context = {"stream_ids": ref_data.stream_ids, "timestamps": ref_data.timestamps}
    if ref_data.labels is not None:
        context["labels"] = ref_data.labels
    detector = cls(**config.params).fit(reference, **context)
    if hasattr(detector, "get_state"):
        outcome.new_state = state_to_npz(detector.get_state())
    return detector


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What the read phase hands to the compute phase (no ORM objects tied to an open session)."""

    reference: references.ReferenceData | None
    states: dict[int, tuple[str, bytes]]  # config id -> (fit key, npz bytes)
    class_names: list[str]
    confirmable: frozenset[int]  # configs without an open alert whose flagged run would open one
    open_alerts: dict[int, alerts.OpenAlert]  # config id -> its unresolved alert
    quiet: dict[int, str]  # config id -> "no new data since run N": not tested, no run written


def _read(
    session: Session, configs: list[DetectorConfig], now: datetime, tick: datetime
) -> tuple[_Inputs, list[Outcome]]:
    """The read phase: reference, fitted states, current windows (shared by configs with the same spec)."""
    version = session.get(ModelVersion, configs[0].model_version_id)
    model = session.get(Model, version.model_id) if version is not None else None
    version_id = configs[0].model_version_id
    fingerprint = freshness.reference_fingerprint(session, version_id)
    last = freshness.last_runs(session, [c.id for c in configs])
    quiet: dict[int, str] = {}
    mark = freshness.watermark(session, version_id, now)  # before the windows: a row landing in between is "new" next time
    windows: dict[tuple[int | None, int | None], tuple[Window, datetime | None, datetime | None]] = {}
    outcomes = []
    for config in configs:
        key = freshness.test_key(config, fingerprint)
        previous = last.get(config.id)
        if freshness.is_quiet(session, config, previous, key, now):
            quiet[config.id] = f"no new data since run {previous.id}"  # type: ignore[union-attr]  # is_quiet needs a previous run
            continue
        spec = (config.window_last_n, config.window_minutes)
        if spec not in windows:
            windows[spec] = _current_window(session, config, now)
        outcome = Outcome(config=config, watermark=mark, test_key=key)
        outcome.window, outcome.window_start, outcome.window_end = windows[spec]
        outcomes.append(outcome)
    tested = [o.config for o in outcomes]
    states = session.scalars(select(DetectorState).where(DetectorState.config_id.in_([c.id for c in tested])))
    open_alerts = {c.id: a for c in tested if (a := alerts.open_alert(session, c)) is not None}
    inputs = _Inputs(
        reference=references.load(session, version_id) if outcomes else None,
        states={s.config_id: (s.fit_key, s.state) for s in states},
        class_names=list(model.class_names) if model is not None else [],
        confirmable=frozenset(
            o.config.id
            for o in outcomes
            if o.config.id not in open_alerts and alerts.would_alert(session, o.config, tick, o.window_start)
        ),
        open_alerts=open_alerts,
        quiet=quiet,
    )
    return inputs, outcomes


def _test_all(outcomes: list[Outcome], inputs: _Inputs, registry: Mapping[str, type[Detector]]) -> None:
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
                outcome.result = detector.test(current, stream_ids=window.stream_id, timestamps=window.ts)  # type: ignore[arg-type]  # None only with an empty window, caught above
            except ShiftwatchError as exc:  # the data or config cannot be tested (e.g. no reference labels): say so
                outcome.note, outcome.new_state = f"cannot test: {exc.message}"[:500], None
                continue
            outcome.min_effect = config.min_effect
            outcome.duration_ms = (time.perf_counter() - started) * 1000


def _decide(outcomes: list[Outcome], ref_data: references.ReferenceData | None) -> None:
    """Holm across the version's detectors at this tick, the detector's drift verdict, and harm."""
    tested = [o for o in outcomes if o.result is not None]
    adjusted = multiple_testing.holm_adjust([o.result.p_value for o in tested])  # type: ignore[union-attr]  # tested: result not None
    estimates = [o.result.effect_size for o in tested if harm.is_accuracy_estimate(o.result.effect_unit)]  # type: ignore[union-attr]  # as above
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


def _explain(outcome: Outcome, ref_data: references.ReferenceData) -> None:
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


def _needs_report(outcome: Outcome, inputs: _Inputs) -> bool:
    """Reports are written only when a flagged run opens an alert or changes an open one materially."""
    config_id = outcome.config.id
    if config_id in inputs.confirmable:
        return True
    alert = inputs.open_alerts.get(config_id)
    effect = 0.0 if outcome.result is None else float(outcome.result.effect_size or 0.0)
    return alert is not None and alerts.changes_materially(alert, outcome.harm, effect)


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
            _explain(outcome, ref_data)  # type: ignore[arg-type]  # a decision implies a pinned reference
            if _needs_report(outcome, inputs):
                name = f"drift-{outcome.config.id}-{tick.strftime('%Y%m%dT%H%M%S%fZ')}.html"
                outcome.report_path = render_window_report(
                    Path(settings.data_dir), name, ref_data, outcome.window, inputs.class_names
                )
    replaced: list[str] = []
    with db.session() as session:
        record_quiet(session, inputs.quiet, tick)
        for outcome in outcomes:
            outcome.config = session.merge(outcome.config, load=False)
        report = write_outcomes(session, settings, outcomes, ref_data, tick, now, replaced)
    remove_reports(Path(settings.data_dir), replaced)  # superseded by the alert's new report, now committed
    return report + TickReport(tick=tick, quiet=tuple(inputs.quiet))


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


def check_version(
    db: Database,
    settings: Settings,
    model_version_id: int,
    now: datetime,
    *,
    registry: Mapping[str, type[Detector]] | None = None,
) -> TickReport:
    """Run every enabled config of one version now, whatever its schedule (``POST .../check``, ``shiftwatch check``).

    The same rules as a tick: a config with no new data since its last run is only recorded as
    checked. The run's tick is ``now`` itself, so it never collides with a scheduled tick.
    """
    from shiftwatch.detectors.configs import default_registry

    with db.session() as session:
        configs = list(
            session.scalars(
                select(DetectorConfig)
                .where(DetectorConfig.model_version_id == model_version_id, DetectorConfig.enabled.is_(True))
                .order_by(DetectorConfig.id)
            )
        )
    if not configs:
        return TickReport(tick=now)
    return run_version(db, settings, configs, now, now, default_registry() if registry is None else registry)
