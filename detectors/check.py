"""On-demand checks: run a version's detectors now instead of waiting for the next tick (API and CLI share this)."""

from __future__ import annotations

from sqlalchemy import select

from shiftwatch.collector import registry
from shiftwatch.db import Database, utcnow
from shiftwatch.detectors.runs import check_version
from shiftwatch.detectors.schemas import CheckOut, DriftRunOut, QuietCheckOut
from shiftwatch.detectors.tables import DetectorConfig, DriftRun
from shiftwatch.errors import Conflict
from shiftwatch.settings import Settings


def check(db: Database, settings: Settings, model: str, version: str) -> CheckOut:
    """Run every enabled config of ``model:version`` now; 409 when it has none (nothing would be checked)."""
    with db.session() as session:
        version_id = registry.get_version(session, model, version).id
        names = dict(
            session.execute(
                select(DetectorConfig.id, DetectorConfig.name).where(
                    DetectorConfig.model_version_id == version_id, DetectorConfig.enabled.is_(True)
                )
            ).all()
        )
    if not names:
        raise Conflict(f"{model}:{version} has no enabled detector config; add one with POST /v1/detector-configs")
    report = check_version(db, settings, version_id, utcnow())
    with db.session() as session:
        written = session.scalars(
            select(DriftRun)
            .where(DriftRun.model_version_id == version_id, DriftRun.tick == report.tick)
            .order_by(DriftRun.config_id)
        )
        runs = [DriftRunOut.model_validate(r) for r in written]
        notes = dict(session.execute(select(DetectorConfig.id, DetectorConfig.check_note).where(
            DetectorConfig.id.in_(report.quiet))).all())
    return CheckOut(
        model=model,
        version=version,
        runs=runs,
        quiet=[QuietCheckOut(config_id=c, name=names[c], note=notes.get(c) or "no new data") for c in report.quiet],
        opened=list(report.opened),
        updated=list(report.updated),
    )
