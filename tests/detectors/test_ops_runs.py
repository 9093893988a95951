"""Scheduled drift runs and the alert lifecycle, on SQLite and PostgreSQL."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from shiftwatch.db import Database, utcnow
from shiftwatch.detectors import alerts
from shiftwatch.detectors.flagged import flagged_samples
from shiftwatch.detectors.multiple_testing import confirmed, holm_adjust
from shiftwatch.detectors.runs import run_due_detectors
from shiftwatch.detectors.tables import Alert, DetectorState, DriftRun, FlaggedSample
from shiftwatch.detectors.two_sample import state_from_npz
from shiftwatch.settings import Settings
from tests.support.drift_scenario import (
    REGISTRY,
    MeanShiftDetector,
    add_config,
    log,
    pin_labeled_reference,
    pin_reference,
    records,
)


@pytest.fixture
def stream(db: Database, settings: Settings, digits_model):
    """digits v1 with a pinned reference two hours ago; returns (version id, time after the reference)."""
    start = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    pin_reference(db, settings, digits_model.id, start)
    return digits_model.id, start + timedelta(minutes=10)


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def run(db: Database, settings: Settings, now: datetime):
    return run_due_detectors(db, settings, now, registry=REGISTRY)


@pytest.mark.slow
def test_flagged_run_opens_one_alert_and_a_second_updates_it_with_a_real_report(db, settings, stream):
    version_id, t = stream
    config_id = add_config(db, version_id)
    log(db, settings, records(t, 200, shift=0.6, confidence=0.6, seed=2))
    first = run(db, settings, t + timedelta(minutes=5))
    assert (first.runs, first.flagged, len(first.opened)) == (1, 1, 1)

    log(db, settings, records(t + timedelta(minutes=6), 200, shift=0.6, confidence=0.6, seed=3))
    second = run(db, settings, t + timedelta(minutes=10))
    assert second.opened == () and second.updated == first.opened

    with db.session() as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert (alert.state, alert.run_count, alert.config_id) == ("open", 2, config_id)
        assert alert.severity == "high"  # confidence fell 0.92 -> 0.6: ~32 points (no accuracy estimator, no labels)
        assert alert.estimated_harm == pytest.approx(32, abs=2) and alert.harm_source == "confidence_drop"
        # Called what it is (issue 24): a confidence drop, not an accuracy, and why it has no interval.
        assert "mean confidence 3" in alert.title and "accuracy 3" not in alert.title and "no interval" in alert.title
        assert alert.evidence["harm"]["interval"] is None and "not accuracy" in alert.evidence["harm"]["note"]
        assert alert.effect_unit == "% of reference kernel spread" and alert.effect_size > 0.5
        samples = alert.evidence["atypical_samples"]  # the MMD witness's top 10 (its n_evidence)
        assert len(samples) == 10 and all(s["input_ref"].startswith("inputs/3-") for s in samples)
        assert len(alert.evidence["shifted_dimensions"]) == 5
        assert alert.report_path.startswith("reports/")  # relative to DATA_DIR: a moved data directory keeps it
        html = (Path(settings.data_dir) / alert.report_path).read_text()
    assert html.lstrip().lower().startswith("<html") or "<!doctype html" in html[:200].lower()
    # Evidently's data-drift preset, over model outputs and embedding components
    assert "Share of Drifted Columns" in html and "plotly" in html
    assert all(column in html for column in ("confidence", "predicted_class", "embedding_pc1"))


def test_without_the_reports_extra_an_alert_keeps_its_evidence_and_the_run_names_the_install(
    db, settings, stream, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "evidently", None)  # as in `pip install shiftwatch` without [reports]
    version_id, t = stream
    add_config(db, version_id)
    log(db, settings, records(t, 200, shift=0.6, confidence=0.6, seed=2))
    assert len(run(db, settings, t + timedelta(minutes=5)).opened) == 1
    with db.session() as session:
        (alert,) = session.scalars(select(Alert)).all()
        (drift_run,) = session.scalars(select(DriftRun)).all()
        assert alert.report_path is None and len(alert.evidence["atypical_samples"]) == 10
    assert "pip install 'shiftwatch[reports]'" in (drift_run.note or "")


def test_quiet_stream_records_runs_reuses_fitted_state_and_opens_nothing(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id, detector="meanshift")
    MeanShiftDetector.fits = 0
    for step in range(3):
        log(db, settings, records(t + timedelta(minutes=2 * step), 200, seed=10 + step))
        report = run(db, settings, t + timedelta(minutes=2 * step + 1))
        assert report.runs == 1 and report.flagged == 0
    assert MeanShiftDetector.fits == 1  # fitted once, then restored from detector_states
    assert count(db, Alert) == 0 and count(db, FlaggedSample) == 0
    with db.session() as session:
        runs = session.scalars(select(DriftRun).order_by(DriftRun.tick)).all()
        assert [r.status for r in runs] == ["ok"] * 3
        assert all(r.n_current == 200 and r.n_reference == 400 and r.p_value is not None for r in runs)
        assert all(r.window_start < r.window_end and r.duration_ms > 0 for r in runs)
        state = state_from_npz(session.scalar(select(DetectorState.state)))
        assert state["mean_"].shape == (64,) and int(state["n_"]) == 400


def test_a_run_is_not_repeated_within_its_schedule(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id, schedule_seconds=600)
    log(db, settings, records(t, 200, seed=4))
    assert run(db, settings, t + timedelta(minutes=1)).runs == 1
    assert run(db, settings, t + timedelta(minutes=5)).runs == 0
    assert run(db, settings, t + timedelta(minutes=11)).runs == 1


def test_missing_reference_or_thin_window_is_recorded_as_skipped(db, settings, digits_model):
    add_config(db, digits_model.id)
    t = utcnow() - timedelta(hours=1)
    log(db, settings, records(t, 10, seed=5))
    run(db, settings, t + timedelta(minutes=1))
    with db.session() as session:
        (only,) = session.scalars(select(DriftRun)).all()
    assert only.status == "skipped" and "no reference" in only.note and not only.decision


@pytest.mark.slow
def test_resolved_alert_then_new_drift_opens_a_new_alert(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id)
    log(db, settings, records(t, 200, shift=0.6, seed=6))
    (first_id,) = run(db, settings, t + timedelta(minutes=5)).opened
    with db.session() as session:
        alerts.acknowledge(session, first_id, "ops", utcnow())
        alerts.resolve(session, alerts.Outbox.of(settings), first_id, "ops", utcnow())
    log(db, settings, records(t + timedelta(minutes=6), 200, shift=0.6, seed=7))
    (second_id,) = run(db, settings, t + timedelta(minutes=10)).opened
    assert second_id != first_id
    with db.session() as session:
        states = dict(session.execute(select(Alert.id, Alert.state)).all())
    assert states == {first_id: "resolved", second_id: "open"}


@pytest.mark.slow
def test_alert_opens_only_after_confirm_runs_consecutive_flagged_runs(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id, confirm_runs=2)
    log(db, settings, records(t, 200, shift=0.6, seed=8))
    first = run(db, settings, t + timedelta(minutes=5))
    assert first.flagged == 1 and first.opened == ()
    log(db, settings, records(t + timedelta(minutes=6), 200, shift=0.6, seed=9))
    assert len(run(db, settings, t + timedelta(minutes=10)).opened) == 1


def test_shift_below_the_practical_threshold_never_alerts(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id, min_effect=20.0)  # % of kernel spread: the 0.6 shift below is ~9
    log(db, settings, records(t, 200, shift=0.6, seed=11))
    report = run(db, settings, t + timedelta(minutes=5))
    assert report.runs == 1 and report.flagged == 0 and count(db, Alert) == 0
    with db.session() as session:
        stored = session.scalar(select(DriftRun))
        assert stored.detector_drift is True  # the detector's own verdict: significant and drift
        # The config's threshold made it negligible: the run says so instead of a bare "no".
        assert stored.significant is True and stored.severity == "negligible" and stored.decision is False
        assert "configured practical threshold" in stored.evidence["verdict"]["note"]


class ExplodingDetector(MeanShiftDetector):
    """Puts an object into its evidence that cannot be stored: the write transaction fails part-way."""

    name = "exploding"
    armed = True

    def test(self, current, **context):
        result = super().test(current, **context)
        if not type(self).armed:
            return result
        return type(result)(**{**result.to_dict(), "evidence": {"oops": object()}})


@pytest.mark.slow
def test_crashed_run_leaves_no_rows_and_is_retried_next_tick(db, settings, stream):
    version_id, t = stream
    registry = {**REGISTRY, "exploding": ExplodingDetector}
    # confirm_runs=2: both runs are flagged, written and rolled back, without alerts (and their reports) on top
    add_config(db, version_id, registry=registry, confirm_runs=2)  # written first in the transaction
    add_config(db, version_id, detector="exploding", registry=registry, confirm_runs=2)
    log(db, settings, records(t, 200, shift=0.6, seed=12))
    ExplodingDetector.armed = True
    crashed = run_due_detectors(db, settings, t + timedelta(minutes=5), registry=registry)
    assert crashed.failed_versions == (version_id,) and crashed.runs == 0
    assert count(db, DriftRun) == count(db, Alert) == count(db, FlaggedSample) == count(db, DetectorState) == 0

    ExplodingDetector.armed = False
    retried = run_due_detectors(db, settings, t + timedelta(minutes=6), registry=registry)
    assert (retried.runs, retried.flagged, retried.failed_versions) == (2, 2, ())
    assert count(db, DriftRun) == 2 and count(db, FlaggedSample) == 30  # MMD's 10 + the kNN fallback's 20


@pytest.mark.slow
def test_flagged_samples_reach_the_labeling_function_without_predictions_fk(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id)
    log(db, settings, records(t, 200, shift=0.6, seed=13))
    before = utcnow() - timedelta(seconds=1)
    run(db, settings, t + timedelta(minutes=5))
    with db.session() as session:
        flagged = flagged_samples(session, version_id)
        assert flagged_samples(session, version_id, since=utcnow() + timedelta(seconds=1)) == []
        assert len(flagged_samples(session, version_id, since=before)) == 10
    assert len(flagged) == 10 and all(f.input_ref.startswith("inputs/13-") for f in flagged)
    assert [f.score for f in flagged] == sorted((f.score for f in flagged), reverse=True)
    with pytest.raises(AttributeError):
        flagged[0].score = 0.0


@pytest.mark.slow
def test_alerts_rank_by_estimated_harm_and_harmless_shift_is_low_severity(db, settings, stream, digits_model):
    from shiftwatch.collector import registry as collector_registry

    version_id, t = stream
    add_config(db, version_id)
    log(db, settings, records(t, 200, shift=0.6, confidence=0.92, seed=14))  # inputs moved, outputs did not
    with db.session() as session:
        v2 = collector_registry.register_version(session, "digits", "v2", embedding_dim=64).id
    # v2 gets its own reference and a shift that costs confidence
    pin_v2 = [r for r in records(t - timedelta(minutes=9), 400, seed=15)]
    for r in pin_v2:
        r.version = "v2"
    log(db, settings, pin_v2)
    with db.session() as session:
        from shiftwatch.detectors import references

        references.pin_time_range(session, v2, t - timedelta(minutes=9), t - timedelta(minutes=2))
    add_config(db, v2)
    hurt = records(t, 200, shift=0.6, confidence=0.7, seed=16)
    for r in hurt:
        r.version = "v2"
    log(db, settings, hurt)
    report = run(db, settings, t + timedelta(minutes=5))
    assert len(report.opened) == 2
    with db.session() as session:
        ranked = alerts.list_alerts(session)
        assert [a.model_version_id for a in ranked] == [v2, version_id]
        assert [a.severity for a in ranked] == ["high", "low"]
        assert abs(ranked[1].estimated_harm) < 1.0


def test_holm_adjusted_p_values_match_the_step_down_procedure():
    assert holm_adjust([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert holm_adjust([0.5, 0.001]) == [0.5, 0.002]
    assert holm_adjust([]) == []


def test_holm_keeps_the_family_wise_error_rate_under_alpha():
    rng = np.random.default_rng(0)
    trials, m, alpha = 4000, 5, 0.05
    uniform = rng.uniform(size=(trials, m))
    any_rejection = [min(holm_adjust(list(row))) <= alpha for row in uniform]
    raw = (uniform.min(axis=1) <= alpha).mean()
    assert np.mean(any_rejection) <= alpha + 0.01 and raw > 0.2  # uncorrected: ~23% chance of a false page


def test_confirm_rule_needs_all_recent_runs_flagged():
    assert confirmed([], True, 1) and not confirmed([], False, 1)
    assert confirmed([True, False], True, 2) and not confirmed([False, True], True, 2)
    assert not confirmed([True], True, 3)


def test_consecutive_run_rule_turns_alpha_per_run_into_alpha_squared_false_pages():
    rng = np.random.default_rng(1)
    alpha, runs = 0.05, 200_000
    flagged = rng.uniform(size=runs) <= alpha  # independent windows under no change
    pages = sum(confirmed([bool(flagged[i - 1])], bool(flagged[i]), 2) for i in range(1, runs))
    assert pages / runs == pytest.approx(alpha**2, rel=0.15)


def test_severity_follows_estimated_harm_and_a_harmless_shift_is_low():
    from shiftwatch.detectors.harm import Harm, confidence_drop, severity

    assert [severity(Harm(p, "x")) for p in (0.4, -3.0, 2.0, 4.9, 5.0, 30.0)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
    assert severity(None) == "medium"
    assert confidence_drop(np.full(100, 0.9), np.full(100, 0.85)).points == pytest.approx(5.0)


def test_holm_is_applied_across_the_detectors_of_a_version_at_each_tick(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id)
    add_config(db, version_id, detector="meanshift", registry=REGISTRY)
    log(db, settings, records(t, 200, seed=33))
    assert run(db, settings, t + timedelta(minutes=5)).runs == 2
    with db.session() as session:
        rows = session.scalars(select(DriftRun).order_by(DriftRun.id)).all()
    assert [r.adjusted_p_value for r in rows] == pytest.approx(holm_adjust([r.p_value for r in rows]))
    assert all(r.adjusted_p_value >= r.p_value for r in rows)


def test_package_detectors_run_side_by_side_and_the_accuracy_estimate_becomes_the_harm(db, settings, digits_model):
    pin_labeled_reference(db, digits_model.id, utcnow() - timedelta(hours=3))
    for detector in ("mmd", "bbsd_confidence"):
        add_config(db, digits_model.id, detector=detector, confirm_runs=2)
    add_config(db, digits_model.id, detector="accuracy_drop", params={"method": "cbpe"}, confirm_runs=2)
    t = utcnow() - timedelta(hours=1)
    log(db, settings, records(t, 300, shift=0.6, confidence=0.6, seed=42))
    assert run(db, settings, t + timedelta(minutes=10)).flagged == 3
    with db.session() as session:
        rows = {r.detector: r for r in session.scalars(select(DriftRun))}
    assert {d: r.status for d, r in rows.items()} == {"mmd": "ok", "bbsd_confidence": "ok", "accuracy_drop": "ok"}
    drop = rows["accuracy_drop"].effect_size
    assert drop > 10  # CBPE on confidences that fell from 0.92 to 0.6
    assert all(r.estimated_harm == pytest.approx(drop) for r in rows.values())  # harm from the estimator, not DoC


def test_a_detector_that_cannot_test_is_recorded_as_skipped_without_stopping_the_others(db, settings, stream):
    version_id, t = stream  # a reference from a time range: no labels
    add_config(db, version_id, detector="accuracy_drop")
    add_config(db, version_id, detector="meanshift")
    log(db, settings, records(t, 200, seed=43))
    assert run(db, settings, t + timedelta(minutes=5)).runs == 2
    with db.session() as session:
        rows = {r.detector: r for r in session.scalars(select(DriftRun))}
    assert rows["meanshift"].status == "ok"
    assert rows["accuracy_drop"].status == "skipped" and "labels" in rows["accuracy_drop"].note
