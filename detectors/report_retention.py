"""Reports fall under retention: a resolved alert's report goes after ``retention_days``, a report no alert names after an hour.

An unresolved alert's report is always kept. A report no alert points at is what a tick
rendered before its transaction rolled back (or one superseded by a crash before deletion);
the hour's grace keeps one a running tick is about to commit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from shiftwatch.db import Database
from shiftwatch.detectors.reports import REPORTS_DIR
from shiftwatch.detectors.tables import Alert

ORPHAN_GRACE = timedelta(hours=1)


def sweep_reports(db: Database, data_dir: Path, retention_days: int, now: datetime) -> int:
    """Delete the reports retention no longer keeps (resolved alerts' after ``retention_days``); returns how many files went."""
    reports = Path(data_dir) / REPORTS_DIR
    if not reports.is_dir():
        return 0
    with db.session() as session:
        named = {Path(p).name: state for p, state in session.execute(select(Alert.report_path, Alert.state)) if p}
    cutoff = now - timedelta(days=retention_days)
    removed: list[str] = []
    for path in reports.glob("*.html"):
        state = named.get(path.name)
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        expired = (state is None and modified < now - ORPHAN_GRACE) or (state == "resolved" and modified < cutoff)
        if expired:
            path.unlink(missing_ok=True)
            removed.append(f"{REPORTS_DIR}/{path.name}")
    if removed:
        with db.session() as session:
            session.execute(
                update(Alert)
                .where(Alert.report_path.in_(removed), Alert.state == "resolved")
                .values(report_path=None)
            )
    return len(removed)
