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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shiftwatch.collector import queries
from shiftwatch.collector.queries import Window
from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.db import Database
from shiftwatch.detectors import (
    DETECTORS,
    alerts,
    claims,
    correctness,
    evidence,
    freshness,
    harm,
    label_free,
    multiple_testing,
    references,
)
from shiftwatch.detectors.base import Detector
from shiftwatch.detectors.configs import LABELED_INPUT, ConfigSpec, detector_class, fit_key
from shiftwatch.detectors.effect import with_min_effect
from shiftwatch.detectors.outcomes import Decided, Explained, Outcome, Planned, Tested, TickReport
from shiftwatch.detectors.reports import remove_reports, render_window_report
from shiftwatch.detectors.run_write import record_quiet, write_outcomes
from shiftwatch.detectors.tables import DetectorConfig, DetectorState, DriftRun
from shiftwatch.detectors.two_sample import state_from_npz, state_to_npz
from shiftwatch.errors import Invalid, ShiftwatchError
from shiftwatch.extras import MissingExtra
from shiftwatch.scheduler import REPLICA_ID, tick_of
from shiftwatch.settings import Settings

log = logging.getLogger(__name__)

# Fewer current samples than this: the run is recorded as skipped, not tested.
MIN_CURRENT = 30


# Versions nobody serves any more are not watched (their windows never change).
UNWATCHED_STATES = ("retired",)


def _due(session: Session, tick: datetime, model_version_id: int | None = None) -> list[ConfigSpec]:
    """The enabled configs (of every watched version, or of one) whose schedule has come round by ``tick``."""
    newest = select(DriftRun.config_id, func.max(DriftRun.tick)).group_by(DriftRun.config_id)
    query = (
        select(DetectorConfig)
        .join(ModelVersion, ModelVersion.id == DetectorConfig.model_version_id)
        .where(DetectorConfig.enabled.is_(True), ModelVersion.state.not_in(UNWATCHED_STATES))
        .order_by(DetectorConfig.id)
    )
    if model_version_id is not None:
        newest = newest.join(DetectorConfig).where(DetectorConfig.model_version_id == model_version_id)
        query = query.where(DetectorConfig.model_version_id == model_version_id)
    last: dict[int, datetime] = dict(session.execute(newest).tuples().all())
    configs = session.scalars(query)
    due = []
    for config in configs:
        previous = last.get(config.id)
        if previous is not None and previous.tzinfo is None:  # SQLite aggregate bypasses UtcDateTime
            previous = previous.replace(tzinfo=UTC)
        if config.checked_at is not None and (previous is None or config.checked_at > previous):
            previous = config.checked_at  # the last quiet check counts as the last run for the schedule
        if previous is None or previous + timedelta(seconds=config.schedule_seconds) <= tick:
            due.append(ConfigSpec.of(config))
    return due


def _array(source: references.ReferenceData | Window, kind: str) -> np.ndarray | None:
    """The column a config reads (``configs.INPUTS``) of a reference or a window; None where it was not logged."""
    columns = {"embeddings": source.embeddings, "probabilities": source.probabilities, "confidence": source.confidence}
    return columns[kind]


def _current_window(
    session: Session, config: ConfigSpec, now: datetime
) -> tuple[Window, datetime | None, datetime | None]:
    # Embedding detectors read the rows that kept their embedding (a random sample, collector.embedding_keep):
    # their window_last_n counts embeddings, so a lower keep rate stretches the window in time, not in power.
    embedded = config.input == "embeddings"
    if config.window_minutes is not None:
        start = now - timedelta(minutes=config.window_minutes)
        return queries.window(session, config.model_version_id, start=start, end=now, embedded=embedded), start, now
    window = queries.window(session, config.model_version_id, end=now, last_n=config.window_last_n, embedded=embedded)
    if len(window) == 0:
        return window, None, None
    bounds = [datetime.fromisoformat(str(t)).replace(tzinfo=UTC) for t in (window.ts[0], window.ts[-1])]
    return window, bounds[0], bounds[1]


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What the read phase hands to the compute phase (no ORM objects tied to an open session)."""

    reference: references.ReferenceData | None
    states: dict[int, tuple[str, bytes]]  # config id -> (fit key, npz bytes)
    class_names: list[str]
    confirmable: frozenset[int]  # configs without an open alert whose flagged run would open one
    open_alerts: dict[int, alerts.OpenAlert]  # config id -> its unresolved alert
    quiet: dict[int, str]  # config id -> "no new data since run N": not tested, no run written
    reference_outcomes: correctness.Outcomes | None = None  # the reference's labeled correctness, for labeled detectors


def _read(
    session: Session, windows_from: Session, configs: list[ConfigSpec], now: datetime, tick: datetime
) -> tuple[_Inputs, list[Planned]]:
    """The read phase: reference, fitted states, current windows (shared by configs with the same spec).

    ``windows_from``: where the predictions are read (the watermark, "new data?", the windows), the
    read replica when there is one. A lagging replica only delays rows to the next tick: the
    watermark is read there too. Runs, states, alerts and the reference (this job's own writes,
    and the fit keys) come from ``session``, on the primary.
    """
    version = session.get(ModelVersion, configs[0].model_version_id)
    model = session.get(Model, version.model_id) if version is not None else None
    version_id = configs[0].model_version_id
    fingerprint = freshness.reference_fingerprint(session, version_id)
    last = freshness.last_runs(session, [c.id for c in configs])
    quiet: dict[int, str] = {}
    mark = freshness.watermark(windows_from, version_id, now)  # before the windows: a row landing in between is "new" next time
    labels = {LABELED_INPUT: correctness.labels_mark(session, version_id)} if any(c.input == LABELED_INPUT for c in configs) else {}
    windows: dict[tuple[int | None, int | None, bool], tuple[Window, datetime | None, datetime | None]] = {}
    planned = []
    for config in configs:
        key = freshness.test_key(config, fingerprint, labels.get(config.input))
        previous = last.get(config.id)
        if previous is not None and freshness.is_quiet(windows_from, config, previous, key, now):
            quiet[config.id] = f"no new {'labels' if config.input in labels else 'data'} since run {previous.id}"
            continue
        spec = (config.window_last_n, config.window_minutes, config.input == "embeddings")
        if spec not in windows:
            windows[spec] = _current_window(windows_from, config, now)
        window, start, end = windows[spec]
        outcomes = correctness.current(session, version_id, window, start, end) if config.input in labels else None
        planned.append(Planned(config=config, window=window, window_start=start, window_end=end, watermark=mark,
                               test_key=key, outcomes=outcomes))  # fmt: skip
    tested = [p.config.id for p in planned]
    reference = references.load(session, version_id) if planned else None
    states = session.scalars(select(DetectorState).where(DetectorState.config_id.in_(tested)))
    open_alerts = {p.config.id: a for p in planned if (a := alerts.open_alert(session, p.config)) is not None}
    inputs = _Inputs(
        reference=reference,
        states={s.config_id: (s.fit_key, s.state) for s in states},
        class_names=list(model.class_names) if model is not None else [],
        confirmable=frozenset(
            p.config.id
            for p in planned
            if p.config.id not in open_alerts and alerts.would_alert(session, p.config, tick, p.window_start)
        ),
        open_alerts=open_alerts,
        quiet=quiet,
        reference_outcomes=correctness.reference(session, reference) if any(p.outcomes is not None for p in planned) else None,
    )
    return inputs, planned


def _detector(
    config: ConfigSpec,
    registry: Mapping[str, type[Detector]],
    ref_data: references.ReferenceData,
    reference: np.ndarray,
    state: tuple[str, bytes] | None,
) -> tuple[Detector, bytes | None]:
    """The fitted detector, restored from its stored state when the fit key matches, else fitted now (with its new state)."""
    cls = detector_class(config.detector, registry)
    if state is not None and state[0] == fit_key(config, ref_data.fingerprint):
        return cls.from_state(dict(config.params), state_from_npz(state[1])), None
    context = {"stream_ids": ref_data.stream_ids, "timestamps": ref_data.timestamps}
    if ref_data.labels is not None:
        context["labels"] = ref_data.labels
    detector = cls(**config.params).fit(reference, **context)
    return detector, state_to_npz(detector.get_state())


def _test(planned: Planned, inputs: _Inputs, registry: Mapping[str, type[Detector]]) -> Tested:
    """The compute phase for one config: fit or restore its detector and test the window; outside any transaction."""
    config, window, ref_data = planned.config, planned.window, inputs.reference
    if planned.outcomes is not None:  # a labeled detector: the window's uniform labels, not a column of it
        try:
            return correctness.test(config, registry, inputs.reference_outcomes, planned.outcomes)
        except Exception as exc:
            log.debug("detector config %s failed", config.id, exc_info=True)
            return Tested(note=failure_note(exc), failed=True)
    current = _array(window, config.input)
    reference = None if ref_data is None else _array(ref_data, config.input)
    if ref_data is None:
        return Tested(note="no reference window pinned for this model version")
    if reference is None or (current is None and len(window) > 0):
        return Tested(note=f"no {config.input} in the reference or the current window")
    if current is None or len(window) < MIN_CURRENT:
        if config.input == "embeddings":  # windows of embeddings hold only the rows that kept theirs
            return Tested(note=f"{len(window)} predictions with a kept embedding in the window, fewer than "
                               f"{MIN_CURRENT} (SHIFTWATCH_EMBEDDING_KEEP_RATE keeps a sample; it fills as traffic comes)")
        return Tested(note=f"{len(window)} predictions in the window, fewer than {MIN_CURRENT}")
    started = time.perf_counter()
    try:
        detector, new_state = _detector(config, registry, ref_data, reference, inputs.states.get(config.id))
        result = detector.test(current, stream_ids=window.stream_id, timestamps=window.ts)
    except ShiftwatchError as exc:  # the data or config cannot be tested (e.g. no reference labels): say so
        return Tested(note=f"cannot test: {exc.message}"[:500])
    except Exception as exc:
        log.debug("detector config %s failed", config.id, exc_info=True)  # the traceback, for whoever debugs it
        return Tested(note=failure_note(exc), failed=True, duration_ms=(time.perf_counter() - started) * 1000)
    return Tested(result=result, new_state=new_state, duration_ms=(time.perf_counter() - started) * 1000)


def failure_note(exc: Exception) -> str:
    """The error in one line: a failed run's note."""
    detail = " ".join(str(exc).split()) or "no message"
    return f"failed: {type(exc).__name__}: {detail}"[:500]


def failure_line(config_id: int, detector: str, note: str | None) -> str:
    """A failed run as the scheduler's log and ``shiftwatch check`` say it, one line."""
    return f"detector config {config_id} ({detector}) {note}"


def _decide(outcomes: list[Outcome], ref_data: references.ReferenceData | None) -> list[Outcome]:
    """Holm across the version's detectors at this tick, the detector's drift verdict, and harm."""
    results = [o.tested.result for o in outcomes if o.tested.result is not None]
    adjusted = iter(multiple_testing.holm_adjust([r.p_value for r in results]))  # in the order of ``results``
    decided = []
    measured = any(harm.is_labeled_accuracy(r) for r in results)
    estimated: dict[int, label_free.LabelFree | None] = {}  # per window: configs with one window size share it
    for outcome in outcomes:
        result = outcome.tested.result
        if result is None:
            decided.append(outcome)
            continue
        adjusted_p = next(adjusted)
        is_significant = multiple_testing.significant(adjusted_p, outcome.config.alpha, bool(result.drift))
        # Holm decides significance across the version's detectors; the detector's ``drift`` (its
        # effect rule, detectors.effect, under the config's explicit min_effect if any) decides
        # whether a significant shift is worth a page.
        verdict = with_min_effect(result, outcome.config.min_effect)
        reference_confidence = None if ref_data is None else ref_data.confidence
        window = outcome.planned.window
        if not measured and id(window) not in estimated:
            estimated[id(window)] = _label_free(ref_data, window)
        estimate = harm.best(results, reference_confidence, window.confidence, estimated.get(id(window)))
        decision = is_significant and bool(verdict.drift)
        choice = Decided(adjusted_p=adjusted_p, decision=decision, verdict=verdict, harm=estimate)
        decided.append(replace(outcome, decided=choice))
    return decided


def _label_free(ref_data: references.ReferenceData | None, window: Window) -> label_free.LabelFree | None:
    """The label-free default estimate of the tick's window where the reference has labels and probabilities."""
    if ref_data is None or ref_data.labels is None or ref_data.probabilities is None or window.probabilities is None:
        return None
    if len(window) < label_free.MIN_WINDOW or window.probabilities.shape[1] != ref_data.probabilities.shape[1]:
        return None
    try:
        return label_free.estimate(ref_data.probabilities, ref_data.labels, window.probabilities)
    except Invalid:  # a reference whose labels do not fit its probabilities: no estimate, the confidence drop stands
        return None


def _explain(outcome: Outcome, ref_data: references.ReferenceData) -> Explained:
    """Evidence of a flagged run: the most shifted embedding dimensions and the most atypical samples."""
    window, result = outcome.planned.window, outcome.tested.result
    assert result is not None
    summary: dict[str, object] = {}
    if ref_data.embeddings is not None and window.embeddings is not None:
        summary["shifted_dimensions"] = evidence.shifted_dimensions(ref_data.embeddings, window.embeddings)
    atypical = evidence.detector_atypical(result, len(window))
    if not atypical:
        if ref_data.embeddings is not None and window.embeddings is not None:
            scores = evidence.knn_scores(ref_data.embeddings, window.embeddings)
        else:  # outputs only: the least confident predictions are the least typical
            scores = 1.0 - window.confidence
        atypical = evidence.atypical_samples(scores)
    summary["atypical_samples"] = [
        {"prediction_id": str(window.ids[s.index]), "input_ref": window.input_ref[s.index], "score": round(s.score, 4)}
        for s in atypical
    ]
    return Explained(summary=summary, atypical=tuple(atypical))


def _needs_report(outcome: Outcome, inputs: _Inputs) -> bool:
    """Reports are written only when a flagged run opens an alert or changes an open one materially."""
    config_id = outcome.config.id
    if config_id in inputs.confirmable:
        return True
    alert = inputs.open_alerts.get(config_id)
    result = outcome.tested.result
    effect = 0.0 if result is None else float(result.effect_size or 0.0)
    return alert is not None and alerts.changes_materially(alert, outcome.decided.harm, effect, config_id)


def _explained(outcome: Outcome, inputs: _Inputs, data_dir: Path, tick: datetime) -> Outcome:
    """A flagged run with its evidence, and its report when ``_needs_report``; any other run as it is."""
    ref_data = inputs.reference
    if not outcome.decided.decision or ref_data is None:
        return outcome
    try:
        explained = _explain(outcome, ref_data)
        if _needs_report(outcome, inputs):
            name = f"drift-{outcome.config.id}-{tick.strftime('%Y%m%dT%H%M%S%fZ')}.html"
            try:
                path = render_window_report(data_dir, name, ref_data, outcome.planned.window, inputs.class_names)
            except MissingExtra as exc:  # the alert keeps its evidence; the note says how to get reports
                return replace(outcome, explained=explained, tested=replace(outcome.tested, note=exc.message[:500]))
            explained = replace(explained, report_path=path)
    except Exception as exc:
        log.debug("evidence of detector config %s failed", outcome.config.id, exc_info=True)
        return replace(outcome, tested=replace(outcome.tested, note=f"evidence or report {failure_note(exc)}"[:500]))
    return replace(outcome, explained=explained)


def run_version(
    db: Database,
    settings: Settings,
    configs: list[ConfigSpec],
    tick: datetime,
    now: datetime,
    registry: Mapping[str, type[Detector]],
    claim: claims.Claim | None = None,
) -> TickReport:
    """Run the due configs of one model version; all of it is written in one transaction, or nothing.

    ``claim``: this worker's hold on the version at ``tick``, finished in that same transaction
    (``claims.LostClaim``, and nothing written, when another worker took it over meanwhile).
    """
    with db.session() as session, db.lagging(session) as windows_from:
        inputs, planned = _read(session, windows_from, configs, now, tick)
    tested = [Outcome(planned=p, tested=_test(p, inputs, registry)) for p in planned]
    data_dir = Path(settings.data_dir)
    outcomes = [_explained(o, inputs, data_dir, tick) for o in _decide(tested, inputs.reference)]
    replaced: list[str] = []
    with db.session() as session:
        if claim is not None:
            claims.finish(session, claim)
        record_quiet(session, inputs.quiet, tick)
        report = write_outcomes(session, alerts.Outbox.of(settings), outcomes, inputs.reference, tick, now, replaced)
    remove_reports(data_dir, replaced)  # superseded by the alert's new report, now committed
    failures = tuple(failure_line(o.config.id, o.config.detector, o.tested.note) for o in tested if o.tested.failed)
    return report + TickReport(tick=tick, quiet=tuple(inputs.quiet), failures=failures)


def run_due_detectors(
    db: Database,
    settings: Settings,
    now: datetime,
    *,
    tick: datetime | None = None,
    registry: Mapping[str, type[Detector]] = DETECTORS,
    worker: str = REPLICA_ID,
) -> TickReport:
    """Run the due configs of every version this worker claims at ``tick``; one failing version never stops the others.

    Any number of workers may call this for the same tick (``detectors.claims``): each due version
    runs on exactly one of them. ``tick``: the scheduler's tick; None, the tick ``now`` falls in.
    """
    tick = tick_of(now, settings.detector_tick_seconds) if tick is None else tick
    with db.session() as session:
        version_ids = sorted({config.model_version_id for config in _due(session, tick)})
    claims.offer(db, version_ids)
    total = TickReport(tick=tick)
    while (claim := claims.claim_next(db, version_ids, tick, worker, settings.detector_lease_seconds)) is not None:
        total = total + _run_claimed(db, settings, claim, now, registry)
    return total


def _run_claimed(
    db: Database, settings: Settings, claim: claims.Claim, now: datetime, registry: Mapping[str, type[Detector]]
) -> TickReport:
    """Run one claimed version under a heartbeat; its configs still due are read again now that it is ours."""
    tick, version_id = claim.tick, claim.model_version_id
    with claims.heartbeat(db, claim, settings.detector_lease_seconds):
        try:
            with db.session() as session:
                configs = _due(session, tick, version_id)
            if not configs:  # run meanwhile (by a worker at an earlier tick): nothing left to do
                claims.release(db, claim)
                return TickReport(tick=tick)
            report = run_version(db, settings, configs, tick, now, registry, claim)
        except claims.LostClaim:
            log.warning("drift runs of model version %s at %s were taken over by another worker; not written",
                        version_id, tick.isoformat())  # fmt: skip
            return TickReport(tick=tick)
        except Exception:
            log.exception("drift runs of model version %s failed at %s; retried next tick", version_id, tick.isoformat())
            claims.release(db, claim)
            return TickReport(tick=tick, failed_versions=(version_id,))
    for line in report.failures:  # recorded on the run; the log says it in the same one line
        log.warning("%s", line)
    return report


def check_version(
    db: Database,
    settings: Settings,
    model_version_id: int,
    now: datetime,
    *,
    registry: Mapping[str, type[Detector]] = DETECTORS,
) -> TickReport:
    """Run every enabled config of one version now, whatever its schedule (``POST .../check``, ``shiftwatch check``).

    The same rules as a tick: a config with no new data since its last run is only recorded as
    checked. The run's tick is ``now`` itself, so it never collides with a scheduled tick.
    """
    with db.session() as session:
        configs = [
            ConfigSpec.of(row)
            for row in session.scalars(
                select(DetectorConfig)
                .where(DetectorConfig.model_version_id == model_version_id, DetectorConfig.enabled.is_(True))
                .order_by(DetectorConfig.id)
            )
        ]
    if not configs:
        return TickReport(tick=now)
    return run_version(db, settings, configs, now, now, registry)
