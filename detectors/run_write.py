"""The write phase of a drift run: runs, fitted states, flagged samples, alert changes and quiet checks, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shiftwatch.detectors import alerts, evidence
from shiftwatch.detectors.configs import ConfigSpec, fit_key
from shiftwatch.detectors.effect import verdict_of
from shiftwatch.detectors.outcomes import Outcome, TickReport
from shiftwatch.detectors.references import ReferenceData
from shiftwatch.detectors.tables import DetectorConfig, DetectorState, DriftRun, FlaggedSample


def record_quiet(session: Session, quiet: dict[int, str], tick: datetime) -> None:
    """A quiet config's check: when and why nothing ran (the config's own updated_at stays as it was)."""
    for config_id, note in quiet.items():
        session.execute(
            update(DetectorConfig)
            .where(DetectorConfig.id == config_id)
            .values(checked_at=tick, check_note=note, updated_at=DetectorConfig.updated_at)
        )


def write_outcomes(
    session: Session,
    outbox: alerts.Outbox,
    outcomes: list[Outcome],
    ref_data: ReferenceData | None,
    tick: datetime,
    now: datetime,
    replaced: list[str],
) -> TickReport:
    opened: list[int] = []
    updated: list[int] = []
    for outcome in outcomes:
        config, window, result = outcome.config, outcome.planned.window, outcome.tested.result
        decided, explained = outcome.decided, outcome.explained
        run = DriftRun(
            config_id=config.id,
            model_version_id=config.model_version_id,
            detector=config.detector,
            tick=tick,
            status="ok" if result is not None else ("failed" if outcome.tested.failed else "skipped"),
            note=outcome.tested.note,
            adjusted_p_value=decided.adjusted_p,
            decision=decided.decision,
            estimated_harm=None if decided.harm is None else decided.harm.points,
            window_start=outcome.planned.window_start,
            window_end=outcome.planned.window_end,
            n_reference=0 if ref_data is None else len(ref_data),
            n_current=len(window),
            duration_ms=outcome.tested.duration_ms,
            data_watermark=outcome.planned.watermark,
            test_key=outcome.planned.test_key,
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
                {**result.evidence, "verdict": verdict_of(decided.verdict or result, run.decision)}
            )
            if decided.harm is not None:  # the console plots each run's estimate in its interval
                run.evidence = {**run.evidence, "harm": decided.harm.to_dict()}
        session.add(run)
        if outcome.tested.new_state is not None and ref_data is not None:
            _save_state(session, config, outcome.tested.new_state, fit_key(config, ref_data.fingerprint), now)
        session.flush()
        if not decided.decision:
            continue
        _flag_samples(session, outcome, run)
        change = alerts.apply_run(
            session,
            outbox,
            config=config,
            run=run,
            estimate=decided.harm,
            summary={**explained.summary, "detector": run.evidence},
            report_path=explained.report_path,
            now=now,
        )
        if change is not None:
            (opened if change.event == "alert.opened" else updated).append(change.alert_id)
            if change.replaced_report is not None:
                replaced.append(change.replaced_report)
    flagged = sum(o.decided.decision for o in outcomes)
    return TickReport(tick=tick, runs=len(outcomes), flagged=flagged, opened=tuple(opened), updated=tuple(updated))


def _save_state(session: Session, config: ConfigSpec, blob: bytes, key: str, now: datetime) -> None:
    row = session.scalar(select(DetectorState).where(DetectorState.config_id == config.id))
    if row is None:
        row = DetectorState(config_id=config.id)
        session.add(row)
    row.fit_key, row.state, row.fitted_at = key, blob, now


def _flag_samples(session: Session, outcome: Outcome, run: DriftRun) -> None:
    window = outcome.planned.window
    reason = f"{outcome.config.name}: among the samples least like the reference (drift run {run.id})"
    for sample in outcome.explained.atypical:
        ts = datetime.fromisoformat(str(window.ts[sample.index])).replace(tzinfo=UTC)
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
