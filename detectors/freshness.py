"""Whether a config has anything new to test: no prediction received since its last run, same reference and settings.

A quiet stream must not be re-tested (issue 17): the same window tested again adds no
evidence, makes confirming runs meaningless and piles up identical reports. The watermark is
the newest ``received_at`` among the version's predictions when a run read its window; a
prediction received later, or one stamped after the last window's end, is new data.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import Prediction
from shiftwatch.detectors.configs import ConfigSpec
from shiftwatch.detectors.tables import DriftRun, ReferenceWindow


def test_key(config: ConfigSpec, reference_fingerprint: str | None) -> str:
    """What a run's outcome depends on besides the data: the reference and every setting of the config."""
    text = json.dumps(
        [
            reference_fingerprint,
            config.detector,
            config.input,
            config.params,
            config.window_last_n,
            config.window_minutes,
            config.alpha,
            config.min_effect,
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def reference_fingerprint(session: Session, model_version_id: int) -> str | None:
    return session.scalar(select(ReferenceWindow.fingerprint).where(ReferenceWindow.model_version_id == model_version_id))


def watermark(session: Session, model_version_id: int, now: datetime) -> datetime | None:
    """The newest ``received_at`` of the version's production predictions stamped before ``now``."""
    return session.scalar(
        select(func.max(Prediction.received_at)).where(
            Prediction.model_version_id == model_version_id, Prediction.route == "production", Prediction.ts < now
        )
    )


def last_runs(session: Session, config_ids: list[int]) -> dict[int, DriftRun]:
    """Each config's newest run (by tick)."""
    newest = (
        select(DriftRun.config_id, func.max(DriftRun.tick).label("tick"))
        .where(DriftRun.config_id.in_(config_ids))
        .group_by(DriftRun.config_id)
        .subquery()
    )
    rows = session.scalars(
        select(DriftRun).join(newest, (DriftRun.config_id == newest.c.config_id) & (DriftRun.tick == newest.c.tick))
    )
    return {r.config_id: r for r in rows}


def has_new_data(session: Session, config: ConfigSpec, last: DriftRun, now: datetime) -> bool:
    """Whether the window at ``now`` holds a prediction the ``last`` run did not see."""
    if last.data_watermark is None:  # nothing was there to see
        return watermark(session, config.model_version_id, now) is not None
    conditions = [Prediction.received_at > last.data_watermark]
    if last.window_end is not None:  # stamped after the last window although received before it was read
        conditions.append(Prediction.ts > last.window_end)
    stmt = select(Prediction.id).where(
        Prediction.model_version_id == config.model_version_id,
        Prediction.route == "production",
        Prediction.ts < now,
        or_(*conditions),
    )
    if config.window_minutes is not None:
        stmt = stmt.where(Prediction.ts >= now - timedelta(minutes=config.window_minutes))
    elif last.window_start is not None and config.window_last_n is not None and last.n_current >= config.window_last_n:
        # A full last-N window keeps its N rows: a row stamped before its start cannot enter the
        # next one. A window that was not full held every row, so any new row is new data.
        stmt = stmt.where(Prediction.ts >= last.window_start)
    return session.scalar(stmt.limit(1)) is not None


def is_quiet(session: Session, config: ConfigSpec, last: DriftRun | None, key: str, now: datetime) -> bool:
    """True when a run now would test exactly what ``last`` tested: same reference and settings, no new prediction.

    A failed run is never the last word: the next tick tries again (the fault may be fixed, or passing).
    """
    return (
        last is not None and last.status != "failed" and last.test_key == key
        and not has_new_data(session, config, last, now)
    )
