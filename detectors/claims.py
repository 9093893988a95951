"""Detector work split over workers: each due model version at a tick is claimed by one worker, under a lease.

Every worker (a ``shiftwatch serve`` replica's scheduler, or ``shiftwatch detectors work``) runs
every tick: it offers a row per due version (``detector_claims``), then takes one version at a
time with ``SELECT .. FOR UPDATE SKIP LOCKED`` (workers never wait on each other's claims) and
runs it. While it runs, a heartbeat thread renews the claim; the transaction that writes the
version's runs also marks the claim finished, and refuses to write when the claim was lost, so a
version's runs at a tick are written once. A worker killed mid-run stops beating: once its claim
is older than the lease, any worker still in that tick, or any worker at the next tick, takes it.

A version (not a config) is the unit: Holm adjusts across a version's detectors and their runs
are written in one transaction. On SQLite (one process) ``FOR UPDATE`` is left out of the SQL
and the same rows serialize the one writer's ticks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shiftwatch.db import Database, utcnow
from shiftwatch.detectors.tables import DetectorClaim

log = logging.getLogger(__name__)

# An offered row's "last tick": before any real tick, and already finished.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
# Heartbeats per lease: a claim survives two missed beats before another worker may take it.
BEATS_PER_LEASE = 3


class LostClaim(RuntimeError):
    """The claim was taken by another worker (this one's lease ran out): nothing of this run may be written."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One worker's hold on one model version at one tick."""

    model_version_id: int
    tick: datetime
    worker: str


def offer(db: Database, version_ids: list[int]) -> None:
    """Make sure each due version has a claim row (every worker offers; the first insert wins, the rest are no-ops)."""
    if not version_ids:
        return
    rows = [{"model_version_id": v, "tick": NEVER, "claimed_by": "", "heartbeat_at": NEVER, "finished_at": NEVER}
            for v in version_ids]  # fmt: skip
    dialect_insert = pg_insert if db.is_postgres else sqlite_insert
    with db.session() as session:
        session.execute(dialect_insert(DetectorClaim).values(rows).on_conflict_do_nothing())


def claim_next(db: Database, version_ids: list[int], tick: datetime, worker: str, lease_s: float) -> Claim | None:
    """Take one of ``version_ids`` not yet run at ``tick`` and held by no live worker; None when none is left."""
    now = utcnow()
    stale = now - timedelta(seconds=lease_s)
    takeable = or_(
        and_(DetectorClaim.finished_at.is_not(None), DetectorClaim.tick < tick),  # done at an earlier tick
        # a dead worker's (no heartbeat within the lease), at this tick or an earlier one
        and_(DetectorClaim.finished_at.is_(None), DetectorClaim.tick <= tick, DetectorClaim.heartbeat_at < stale),
    )
    with db.session() as session:
        row = session.scalars(
            select(DetectorClaim)
            .where(DetectorClaim.model_version_id.in_(version_ids), takeable)
            .order_by(DetectorClaim.model_version_id)
            .limit(1)
            .with_for_update(skip_locked=True)  # another worker's claim in progress is passed over, not waited on
        ).first()
        if row is None:
            return None
        if row.finished_at is None:
            log.warning("detector claim of version %s by %s expired (no heartbeat since %s); %s takes it",
                        row.model_version_id, row.claimed_by, row.heartbeat_at.isoformat(), worker)  # fmt: skip
        row.tick, row.claimed_by, row.heartbeat_at, row.finished_at = tick, worker, now, None
    return Claim(model_version_id=row.model_version_id, tick=tick, worker=worker)


def _held(claim: Claim) -> ColumnElement[bool]:
    """The SQL condition: this claim's row, still held by its worker at its tick and not finished."""
    return and_(
        DetectorClaim.model_version_id == claim.model_version_id,
        DetectorClaim.tick == claim.tick,
        DetectorClaim.claimed_by == claim.worker,
        DetectorClaim.finished_at.is_(None),
    )


def finish(session: Session, claim: Claim) -> None:
    """Mark the claim done in ``session``'s transaction (the one writing the runs); LostClaim if it is not ours any more."""
    stmt = update(DetectorClaim).where(_held(claim)).values(finished_at=utcnow()).returning(DetectorClaim.tick)
    if session.execute(stmt).first() is None:
        raise LostClaim(f"model version {claim.model_version_id} at {claim.tick.isoformat()} was taken by another worker")


def release(db: Database, claim: Claim) -> None:
    """Finish a claim on its own (nothing was due, or the version failed: it is retried at the next tick)."""
    try:
        with db.session() as session:
            finish(session, claim)
    except LostClaim:
        log.warning("claim of model version %s was taken over before it was released", claim.model_version_id)


@contextmanager
def heartbeat(db: Database, claim: Claim, lease_s: float) -> Iterator[None]:
    """Renew ``claim`` every ``lease_s / BEATS_PER_LEASE`` seconds while the block runs (a thread of its own)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease_s / BEATS_PER_LEASE):
            try:
                with db.session() as session:
                    session.execute(update(DetectorClaim).where(_held(claim)).values(heartbeat_at=utcnow()))
            except Exception:  # a missed beat; the next one may get through before the lease runs out
                log.warning("heartbeat of detector claim %s failed", claim.model_version_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"claim-{claim.model_version_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
