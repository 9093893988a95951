"""What a scheduled detector tick costs: fit vs restored state, a quiet tick, a tick that opens an alert, claims.

One model version (64-d embeddings, 10 classes), a 2,000-sample reference and 1,000-sample
windows, three detectors (MMD, KS-PCA, BBSD confidence) on SQLite and, when reachable,
PostgreSQL. Peer in the same run: refitting every detector on every tick (what a scheduler
without persisted state does) against restoring the fitted state from ``detector_states``.

    .venv/bin/python bench/detectors_ops.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import delete

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root: tests.support imports
# The imports below come after the sys.path line above, hence their E402 noqa.
from shiftwatch.collector import registry  # noqa: E402
from shiftwatch.db import Database, utcnow  # noqa: E402
from shiftwatch.detectors import configs, references  # noqa: E402
from shiftwatch.detectors.runs import run_due_detectors  # noqa: E402
from shiftwatch.detectors.tables import DetectorState  # noqa: E402
from shiftwatch.migrate import upgrade  # noqa: E402
from shiftwatch.scheduler import claim_tick, tick_of  # noqa: E402
from shiftwatch.settings import Settings  # noqa: E402
from tests.support.drift_scenario import log, records  # noqa: E402  (the tests' seeded stream)

REFERENCE, WINDOW, DETECTORS, CLAIMS = 2000, 1000, ("mmd", "ks", "bbsd_confidence"), 200


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def setup_version(url: str, data_dir: Path) -> tuple[Database, Settings, datetime]:
    """A migrated store with digits v1, its pinned REFERENCE and the DETECTORS configs; returns the reference start."""
    upgrade(url)
    db = Database.connect(url)
    settings = Settings(database_url=url, data_dir=data_dir, scheduler_enabled=False, detector_tick_seconds=60)
    start = (utcnow() - timedelta(hours=6)).replace(microsecond=0)
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        version_id = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production").id
    log(db, settings, records(start, REFERENCE, seed=1))
    with db.session() as session:
        references.pin_time_range(session, version_id, start, start + timedelta(seconds=REFERENCE + 1))
        for name in DETECTORS:
            configs.create(session, version_id, name, window_last_n=WINDOW, schedule_seconds=60, confirm_runs=1)
    return db, settings, start


def bench_backend(url: str, data_dir: Path) -> dict[str, float]:
    db, settings, start = setup_version(url, data_dir)
    t = start + timedelta(hours=1)
    results: dict[str, float] = {}
    quiet_fits, quiet_restored = [], []
    for step in range(4):  # a fresh window each tick; state dropped before the "fit" ticks
        now = t + timedelta(minutes=10 * step)
        log(db, settings, records(now - timedelta(seconds=WINDOW + 5), WINDOW, seed=10 + step))
        refit = step % 2 == 0
        if refit:
            with db.session() as session:
                session.execute(delete(DetectorState))
        report, seconds = timed(run_due_detectors, db, settings, now)
        assert report.runs == len(DETECTORS) and not report.opened, report
        (quiet_fits if refit else quiet_restored).append(seconds)
    results["tick_quiet_refit_s"] = statistics.median(quiet_fits)
    results["tick_quiet_restored_s"] = statistics.median(quiet_restored)
    now = t + timedelta(minutes=60)
    log(db, settings, records(now - timedelta(seconds=WINDOW + 5), WINDOW, shift=0.5, confidence=0.7, seed=20))
    report, results["tick_opens_alert_s"] = timed(run_due_detectors, db, settings, now)
    assert len(report.opened) == len(DETECTORS), report
    tick = tick_of(utcnow(), 60)
    latencies = []
    for i in range(CLAIMS):
        _, seconds = timed(claim_tick, db, "bench.claims", tick + timedelta(minutes=i))
        latencies.append(seconds)
    results["claim_tick_median_ms"] = 1000 * statistics.median(latencies)
    db.dispose()
    return results


LARGE = 50_000


def bench_large_window(url: str, data_dir: Path) -> dict[str, object]:
    """Issue #9: a 50,000-sample window with a shift too small to cost accuracy pages nobody above low."""
    from sqlalchemy import select

    from shiftwatch.detectors.tables import Alert, DriftRun

    upgrade(url)
    db = Database.connect(url)
    settings = Settings(database_url=url, data_dir=data_dir, scheduler_enabled=False)
    start = (utcnow() - timedelta(hours=30)).replace(microsecond=0)
    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        version_id = registry.register_version(session, "digits", "v1", embedding_dim=64, state="production").id
    log(db, settings, records(start, REFERENCE, seed=1, spacing_s=0.1))
    with db.session() as session:
        references.pin_time_range(session, version_id, start, start + timedelta(seconds=REFERENCE))
        for name in ("mmd", "bbsd_confidence"):
            configs.create(session, version_id, name, window_last_n=LARGE, schedule_seconds=60, confirm_runs=1)
    # 0.05 reference std on every embedding dimension, mean confidence 0.920 -> 0.917: real, tiny.
    current = start + timedelta(hours=1)
    for part in range(0, LARGE, 10_000):
        log(
            db,
            settings,
            records(
                current + timedelta(seconds=part / 10),
                10_000,
                shift=0.05,
                confidence=0.917,
                seed=100 + part,
                spacing_s=0.1,
            ),
        )
    _report, seconds = timed(run_due_detectors, db, settings, current + timedelta(hours=3))
    with db.session() as session:
        runs = {r.detector: r for r in session.scalars(select(DriftRun))}
        severities = [a.severity for a in session.scalars(select(Alert))]
    db.dispose()
    return {
        "window": LARGE,
        "tick_s": seconds,
        "runs": {
            d: {
                "p_value": r.p_value,
                "effect_size": r.effect_size,
                "effect_unit": r.effect_unit,
                "decision": r.decision,
                "estimated_harm_points": r.estimated_harm,
            }
            for d, r in runs.items()
        },
        "alerts_above_low": sum(s != "low" for s in severities),
        "alerts": len(severities),
    }


def main() -> None:
    console = Console()
    from tests.support.databases import create_pg_database, drop_pg_database, pg_unavailable_reason

    backends: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        console.print("[bold]SQLite[/]")
        backends["sqlite"] = bench_backend(f"sqlite:///{folder}/bench.db", Path(folder) / "data")
        console.print(f"[bold]SQLite, one {LARGE:,}-sample window with a harmless shift[/]")
        large = bench_large_window(f"sqlite:///{folder}/large.db", Path(folder) / "data-large")
        if pg_unavailable_reason() is None:
            console.print("[bold]PostgreSQL[/]")
            url = create_pg_database("sw_bench_ops")
            try:
                backends["postgres"] = bench_backend(url, Path(folder) / "data-pg")
            finally:
                drop_pg_database(url)
    table = Table(title=f"Scheduled tick: {len(DETECTORS)} detectors, reference {REFERENCE}, window {WINDOW}, 64-d")
    table.add_column("measure")
    for backend in backends:
        table.add_column(backend, justify="right")
    names = {
        "tick_quiet_refit_s": "quiet tick, refit every detector (peer) [s]",
        "tick_quiet_restored_s": "quiet tick, state restored [s]",
        "tick_opens_alert_s": "tick that opens alerts (+ 3 Evidently reports) [s]",
        "claim_tick_median_ms": "claim_tick, median [ms]",
    }
    for key, label in names.items():
        table.add_row(label, *(f"{backends[b][key]:.3f}" for b in backends))
    for values in backends.values():
        values["restored_vs_refit_speedup"] = values["tick_quiet_refit_s"] / values["tick_quiet_restored_s"]
    table.add_row("refit / restored (x)", *(f"{backends[b]['restored_vs_refit_speedup']:.2f}" for b in backends))
    console.print(table)
    large_table = Table(title=f"{LARGE:,}-sample window, shift of 0.05 std and -0.3 points of confidence")
    for column in ("detector", "p-value", "effect", "flagged", "est. harm [points]"):
        large_table.add_column(column)
    for detector, run in large["runs"].items():
        large_table.add_row(
            detector,
            f"{run['p_value']:.3g}",
            f"{run['effect_size']:.3g} {run['effect_unit']}",
            str(run["decision"]),
            f"{run['estimated_harm_points']:.2f}",
        )
    console.print(large_table)
    console.print(f"alerts: {large['alerts']}, above low severity: {large['alerts_above_low']}")
    out = ROOT / "bench" / "results" / "detectors_ops.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    import os

    # The machine is shared: the load average says how much of its 2 cores this run had.
    context = {"reference": REFERENCE, "window": WINDOW, "detectors": DETECTORS, "load_average_1m": os.getloadavg()[0]}
    out.write_text(json.dumps({**context, **backends, "large_window": large}, indent=2))
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
