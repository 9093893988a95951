"""The scheduler does not re-test what it already tested (issue 17), on SQLite and PostgreSQL.

A quiet stream used to be tested every tick on the identical window: hundreds of runs, an
alert counting them, one Evidently report per tick, and confirming runs on the same samples.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from shiftwatch.collector.tables import ModelVersion
from shiftwatch.db import Database, utcnow
from shiftwatch.detectors import alerts, configs, references
from shiftwatch.detectors.report_retention import sweep_reports
from shiftwatch.detectors.runs import check_version, run_due_detectors
from shiftwatch.detectors.tables import Alert, DetectorConfig, DriftRun
from shiftwatch.settings import Settings
from tests.support.drift_scenario import REGISTRY, add_config, log, pin_reference, records


@pytest.fixture
def stream(db: Database, settings: Settings, digits_model):
    start = (utcnow() - timedelta(hours=3)).replace(microsecond=0)
    pin_reference(db, settings, digits_model.id, start)
    return digits_model.id, start + timedelta(minutes=10)


def run(db: Database, settings: Settings, now):
    return run_due_detectors(db, settings, now, registry=REGISTRY)


def runs(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(DriftRun)) or 0)


def report_files(settings: Settings) -> set[str]:
    reports = Path(settings.data_dir) / "reports"
    return {p.name for p in reports.iterdir()} if reports.is_dir() else set()


@pytest.mark.slow
@pytest.mark.parametrize("window", [{"window_last_n": 200}, {"window_last_n": None, "window_minutes": 10}])
def test_a_quiet_server_for_an_hour_of_ticks_writes_no_new_run_and_no_new_report(db, settings, stream, window):
    version_id, t = stream
    config_id = add_config(db, version_id, detector="meanshift", **window)
    log(db, settings, records(t, 200, shift=0.6, confidence=0.6, seed=2))
    first = run(db, settings, t + timedelta(minutes=4))
    assert first.runs == 1 and len(first.opened) == 1
    files = report_files(settings)
    assert len(files) == 1
    for minute in range(5, 65):  # an hour of one-minute ticks, no new prediction
        report = run(db, settings, t + timedelta(minutes=minute))
        assert report.runs == 0 and report.quiet == (config_id,)
    assert runs(db) == 1 and report_files(settings) == files
    with db.session() as session:
        (alert,) = session.scalars(select(Alert)).all()
        config = session.get(DetectorConfig, config_id)
        first_run = session.scalar(select(DriftRun.id))
        assert alert.run_count == 1
        assert config.check_note == f"no new data since run {first_run}" and config.checked_at is not None
    # The same stream with new predictions is tested again at once: the rule is "nothing new", not "never".
    log(db, settings, records(t + timedelta(minutes=64, seconds=30), 50, shift=0.6, confidence=0.6, seed=3))
    assert run(db, settings, t + timedelta(minutes=66)).runs == 1


def test_a_new_reference_or_changed_settings_is_tested_again_without_new_data(db, settings, stream):
    version_id, t = stream
    config_id = add_config(db, version_id, detector="meanshift")
    log(db, settings, records(t, 200, seed=4))
    assert run(db, settings, t + timedelta(minutes=4)).runs == 1
    assert run(db, settings, t + timedelta(minutes=6)).quiet == (config_id,)
    with db.session() as session:
        configs.update(session, config_id, {"alpha": 0.01}, registry=REGISTRY)
    assert run(db, settings, t + timedelta(minutes=8)).runs == 1
    assert run(db, settings, t + timedelta(minutes=10)).runs == 0
    with db.session() as session:  # re-pinned on half the old reference: no new prediction, another fingerprint
        references.pin_time_range(session, version_id, t - timedelta(minutes=10), t - timedelta(seconds=400))
    assert run(db, settings, t + timedelta(minutes=12)).runs == 1


@pytest.mark.slow
def test_confirming_runs_must_test_new_samples_not_an_overlapping_window(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id, detector="meanshift", confirm_runs=2)
    log(db, settings, records(t, 200, shift=0.6, seed=5))
    assert run(db, settings, t + timedelta(minutes=4)).flagged == 1
    # 50 new samples: the last-200 window still holds 150 the first run tested, so it confirms nothing
    log(db, settings, records(t + timedelta(minutes=5), 50, shift=0.6, seed=6))
    second = run(db, settings, t + timedelta(minutes=6))
    assert second.flagged == 1 and second.opened == ()
    # 200 more: a window disjoint from the second run's, which is flagged too: now it is confirmed
    log(db, settings, records(t + timedelta(minutes=7), 200, shift=0.6, seed=7))
    third = run(db, settings, t + timedelta(minutes=11))
    assert third.flagged == 1 and len(third.opened) == 1
    with db.session() as session:
        tested = session.execute(select(DriftRun.window_start, DriftRun.window_end).order_by(DriftRun.tick)).all()
    assert tested[1].window_end < tested[2].window_start and tested[0].window_end > tested[1].window_start


def test_a_row_stamped_before_a_last_n_window_that_was_not_full_is_new_data(db, settings, stream):
    """A window that held fewer than N rows held every row: a late one stamped before it belongs in the next."""
    version_id, t = stream
    config_id = add_config(db, version_id, detector="meanshift", window_last_n=1000)  # 400 reference + 100 rows
    log(db, settings, records(t, 100, seed=15))
    assert run(db, settings, t + timedelta(minutes=4)).runs == 1
    with db.session() as session:
        first = session.scalar(select(DriftRun).where(DriftRun.config_id == config_id))
        assert first.n_current < 1000
        before_window = first.window_start - timedelta(minutes=1)
    assert run(db, settings, t + timedelta(minutes=5)).quiet == (config_id,)
    log(db, settings, records(before_window, 1, seed=16))
    assert run(db, settings, t + timedelta(minutes=6)).runs == 1


def test_a_row_stamped_before_a_full_last_n_window_is_not_new_data(db, settings, stream):
    """A full last-N window keeps its N rows: a late row stamped before its start cannot enter the next one."""
    version_id, t = stream
    config_id = add_config(db, version_id, detector="meanshift", window_last_n=200)
    log(db, settings, records(t, 200, seed=17))
    assert run(db, settings, t + timedelta(minutes=4)).runs == 1
    with db.session() as session:
        first = session.scalar(select(DriftRun).where(DriftRun.config_id == config_id))
        assert first.n_current == 200
        start, end = first.window_start, first.window_end
    log(db, settings, records(start - timedelta(seconds=30), 1, seed=18))
    assert run(db, settings, t + timedelta(minutes=5)).quiet == (config_id,)
    log(db, settings, records(start + (end - start) / 2, 1, seed=19))  # inside the window: it pushes the oldest out
    assert run(db, settings, t + timedelta(minutes=6)).runs == 1


def test_retired_versions_are_not_watched(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id, detector="meanshift")
    with db.session() as session:
        session.execute(update(ModelVersion).where(ModelVersion.id == version_id).values(state="retired"))
    log(db, settings, records(t, 200, seed=8))
    assert run(db, settings, t + timedelta(minutes=4)).runs == 0 and runs(db) == 0


@pytest.mark.slow
def test_an_open_alert_gets_a_new_report_only_when_it_changes_materially(db, settings, stream):
    version_id, t = stream
    add_config(db, version_id, detector="meanshift")
    log(db, settings, records(t, 200, shift=0.6, confidence=0.9, seed=9))
    (alert_id,) = run(db, settings, t + timedelta(minutes=4)).opened
    (first,) = report_files(settings)
    log(db, settings, records(t + timedelta(minutes=5), 200, shift=0.6, confidence=0.9, seed=10))
    assert run(db, settings, t + timedelta(minutes=9)).updated == (alert_id,)
    assert report_files(settings) == {first}  # same drift, same size: the alert counts the run, no new report
    log(db, settings, records(t + timedelta(minutes=10), 200, shift=2.5, confidence=0.5, seed=11))
    assert run(db, settings, t + timedelta(minutes=14)).updated == (alert_id,)
    with db.session() as session:
        alert = alerts.get(session, alert_id)
        assert (alert.run_count, alert.severity) == (3, "high")
        current = alerts.report_file(session, settings.data_dir, alert_id).name
    assert current != first and report_files(settings) == {current}  # the superseded report is gone


def test_reports_fall_under_retention_and_an_open_alerts_report_is_kept(db, settings, stream):
    version_id, t = stream
    config_id = add_config(db, version_id, detector="meanshift")
    reports = Path(settings.data_dir) / "reports"
    reports.mkdir(parents=True)
    log(db, settings, records(t, 200, seed=12))
    run(db, settings, t + timedelta(minutes=4))
    with db.session() as session:
        run_id = session.scalar(select(DriftRun.id))
        for name, state in (("open.html", "open"), ("resolved.html", "resolved")):
            session.add(
                Alert(config_id=config_id, model_version_id=version_id, detector="meanshift", state=state,
                      open_key=config_id if state == "open" else None, severity="low", title=name,
                      first_run_id=run_id, last_run_id=run_id, effect_size=1.0, effect_unit="x",
                      report_path=f"reports/{name}")
            )
    old = (utcnow() - timedelta(days=settings.retention_days + 1)).timestamp()
    for name in ("open.html", "resolved.html", "orphan.html", "fresh-orphan.html"):
        (reports / name).write_text("<html></html>")
        if name != "fresh-orphan.html":
            os.utime(reports / name, (old, old))
    assert sweep_reports(db, settings.data_dir, settings.retention_days, utcnow()) == 2
    assert report_files(settings) == {"open.html", "fresh-orphan.html"}
    with db.session() as session:
        paths = dict(session.execute(select(Alert.state, Alert.report_path)).all())
    assert paths == {"open": "reports/open.html", "resolved": None}


def test_an_on_demand_check_runs_now_and_then_says_no_new_data(db, settings, stream):
    version_id, t = stream
    config_id = add_config(db, version_id, detector="meanshift", schedule_seconds=3600)
    log(db, settings, records(t, 200, seed=13))
    assert run(db, settings, t + timedelta(minutes=4)).runs == 1
    log(db, settings, records(t + timedelta(minutes=5), 200, seed=14))
    assert run(db, settings, t + timedelta(minutes=10)).runs == 0  # not due for an hour
    checked = check_version(db, settings, version_id, t + timedelta(minutes=10, seconds=1), registry=REGISTRY)
    assert checked.runs == 1 and checked.quiet == ()
    again = check_version(db, settings, version_id, t + timedelta(minutes=10, seconds=2), registry=REGISTRY)
    assert again.runs == 0 and again.quiet == (config_id,) and runs(db) == 2


def test_with_overlapping_windows_the_chain_rule_keeps_false_alerts_under_alpha_squared():
    """Windows of 200 every 50 samples under no change: consecutive runs share 75 % of their samples.

    Counting two flagged runs in a row as confirmation pages far more often than alpha^2;
    the disjoint chain (multiple_testing.confirming_chain) stays under it.
    """
    import numpy as np

    from shiftwatch.detectors.multiple_testing import confirmed, confirming_chain

    rng = np.random.default_rng(7)
    alpha, width, step, runs = 0.05, 200, 50, 100_000
    stream = rng.normal(size=step * runs + width)
    sums = np.concatenate([[0.0], np.cumsum(stream)])
    starts = np.arange(runs) * step
    z = (sums[starts + width] - sums[starts]) / np.sqrt(width)
    flagged = np.abs(z) > 1.959964  # a two-sided z-test at alpha per window
    assert flagged.mean() == pytest.approx(alpha, rel=0.1)
    naive = sum(confirmed([bool(flagged[i - 1])], True, 2) for i in range(1, runs) if flagged[i])
    chained = 0
    for i in np.flatnonzero(flagged):
        earlier = ((bool(flagged[j]), int(starts[j]), int(starts[j]) + width - 1) for j in range(i - 1, -1, -1))
        chained += confirmed(confirming_chain(earlier, int(starts[i]), 1), True, 2)
    assert naive / runs > 4 * alpha**2  # overlap makes "two in a row" cheap under no change
    assert chained / runs <= alpha**2
