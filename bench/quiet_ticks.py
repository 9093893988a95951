"""What a tick costs when nothing new arrived (issue 17): a quiet tick against a tick that re-tests the window.

One model version, a 2,000-sample reference, 1,000-sample windows, three detectors (MMD, KS,
BBSD confidence), alerts open on all three (their reports written once). Peer in the same run:
a tick after ONE new prediction, which tests the whole, almost identical window again (what
every tick did before, when a quiet `serve` re-tested its window 544 times in 90 minutes).
Also counted: runs and report bytes written by QUIET_TICKS quiet ticks.

    .venv/bin/python bench/quiet_ticks.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root: tests.support imports
sys.path.insert(0, str(ROOT / "bench"))
# The imports below come after the sys.path lines above, hence their E402 noqa.
from detectors_ops import DETECTORS, REFERENCE, WINDOW, setup_version  # noqa: E402  (the same version, reference and configs)

from shiftwatch.detectors.runs import run_due_detectors  # noqa: E402
from shiftwatch.detectors.tables import DriftRun  # noqa: E402
from tests.support.drift_scenario import log, records  # noqa: E402  (the tests' seeded stream)

QUIET_TICKS, RETESTS = 20, 3


def report_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "reports").glob("*.html"))


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="sw-quiet-"))
    db, settings, start = setup_version(f"sqlite:///{data_dir / 'bench.db'}", data_dir)
    t = start + timedelta(hours=1)
    log(db, settings, records(t - timedelta(seconds=WINDOW + 5), WINDOW, shift=0.5, confidence=0.7, seed=20))
    opened = run_due_detectors(db, settings, t)
    assert len(opened.opened) == len(DETECTORS), opened
    bytes_after_open = report_bytes(data_dir)

    quiet = []
    for minute in range(1, QUIET_TICKS + 1):
        started = time.perf_counter()
        report = run_due_detectors(db, settings, t + timedelta(minutes=minute))
        quiet.append(time.perf_counter() - started)
        assert report.runs == 0 and len(report.quiet) == len(DETECTORS), report
    with db.session() as session:
        runs_after_quiet = int(session.scalar(select(func.count()).select_from(DriftRun)) or 0)
    quiet_bytes = report_bytes(data_dir) - bytes_after_open

    retest = []
    for step in range(RETESTS):  # one new prediction: the whole window is tested again
        now = t + timedelta(minutes=QUIET_TICKS + 1 + step)
        log(db, settings, records(now - timedelta(seconds=2), 1, shift=0.5, confidence=0.7, seed=30 + step))
        started = time.perf_counter()
        report = run_due_detectors(db, settings, now)
        retest.append(time.perf_counter() - started)
        assert report.runs == len(DETECTORS), report
    db.dispose()

    results = {
        "detectors": list(DETECTORS),
        "reference": REFERENCE,
        "window": WINDOW,
        "backend": "sqlite",
        "quiet_tick_median_s": statistics.median(quiet),
        "retest_tick_median_s": statistics.median(retest),
        "retest_over_quiet": statistics.median(retest) / statistics.median(quiet),
        "quiet_ticks": QUIET_TICKS,
        "runs_written_by_quiet_ticks": runs_after_quiet - len(DETECTORS),
        "report_bytes_written_by_quiet_ticks": quiet_bytes,
        "report_bytes_per_alert_open": bytes_after_open / len(DETECTORS),
    }
    out = ROOT / "bench" / "results" / "quiet_ticks.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
