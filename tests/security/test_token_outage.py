"""Verified tokens keep working through a short database outage, with a stated revocation bound (issue 27,
item 5): within ``OUTAGE_GRACE_SECONDS`` of its last check a token is honoured while PostgreSQL is
stopped; past it, and for a token never verified, the request still gets 503 (the database error)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from shiftwatch.db import Database
from shiftwatch.tokens import CACHE_SECONDS, OUTAGE_GRACE_SECONDS, TokenResolver, create_token, revoke_token

pytestmark = pytest.mark.slow


class Clock:
    """Seconds as the resolver sees them; the test moves them on instead of sleeping a minute."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_outlives_a_short_outage_and_no_longer(fault_cluster) -> None:
    db = Database.connect(fault_cluster.url)
    ingest_token, other_token = create_token(db, "sdk", ["ingest"]), create_token(db, "other", ["read"])
    clock = Clock()
    resolve = TokenResolver(db, clock=clock)
    assert resolve(ingest_token).name == "sdk"
    fault_cluster.stop()
    try:
        clock.now += CACHE_SECONDS + 1  # past the cache: the database is asked, and is away
        assert resolve(ingest_token).name == "sdk"
        with pytest.raises(OperationalError):
            resolve(other_token)  # never verified by this process: no grace
        clock.now += OUTAGE_GRACE_SECONDS
        with pytest.raises(OperationalError):
            resolve(ingest_token)  # the bound on an outage's grace
    finally:
        fault_cluster.start()
    revoke_token(db, "sdk")
    clock.now += CACHE_SECONDS + 1
    assert resolve(ingest_token) is None  # the database answers again: revocation holds
    db.dispose()
