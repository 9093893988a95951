"""Scoped API tokens: create one (shown once), resolve a presented one to a Principal, revoke one.

A token is ``sw_`` + 32 random bytes (url-safe base64), so a leaked one is easy to grep for
in logs and repositories. Only its sha256 is stored: a database dump grants nothing. The
lookup is by hash (a unique index), then the hashes are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from shiftwatch.auth import SCOPES, Principal
from shiftwatch.auth_tables import ApiToken, ConsoleSession
from shiftwatch.db import Database, utcnow
from shiftwatch.errors import Conflict, Invalid, NotFound

TOKEN_PREFIX = "sw_"
TOKEN_BYTES = 32
# last_used_at is a hint for people auditing tokens, not a log: writing it on every ingest
# request would add a row update per batch, so it is refreshed at most once a minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Resolved tokens are cached this long per process; a revocation reaches every replica within it.
CACHE_SECONDS = 5.0
# While the database cannot be reached, a token this process verified within this many seconds is
# still honoured (issue 27.5: 62 requests got 503 in a 10 s outage). So a revocation takes effect
# within CACHE_SECONDS while the database answers, and within OUTAGE_GRACE_SECONDS on a replica
# that cannot reach it. Unknown and revoked tokens are never honoured from the cache past CACHE_SECONDS.
OUTAGE_GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What ``token list`` shows: never the secret, never its hash."""

    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(scopes))
    if not chosen:
        raise Invalid("scope", f"give at least one of {', '.join(SCOPES)}")
    for scope in chosen:
        if scope not in SCOPES:
            raise Invalid("scope", f"{scope!r} is not one of {', '.join(SCOPES)}")
    return chosen


def create_token(db: Database, name: str, scopes: Iterable[str]) -> str:
    """Issue a token; the returned secret is the only copy there will ever be."""
    if not name or len(name) > 200:
        raise Invalid("name", "must be 1 to 200 characters")
    chosen = check_scopes(scopes)
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with db.session() as session:
        if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
            raise Conflict(f"a token named {name!r} exists already (revoke it or pick another name)")
        session.add(ApiToken(name=name, scopes=list(chosen), token_sha256=hash_token(token)))
    return token


def revoke_token(db: Database, name: str) -> None:
    with db.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None:
            raise NotFound(f"no token named {name!r}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        # Its console sessions end with it (console_principal checks the token too; this makes it visible).
        session.execute(update(ConsoleSession).where(ConsoleSession.token_id == row.id,
                                                     ConsoleSession.revoked_at.is_(None)).values(revoked_at=row.revoked_at))


def list_tokens(db: Database) -> list[TokenInfo]:
    with db.session() as session:
        rows = session.scalars(select(ApiToken).order_by(ApiToken.name)).all()
        return [TokenInfo(r.name, tuple(r.scopes), r.created_at, r.revoked_at, r.last_used_at) for r in rows]


def resolve_token(db: Database, token: str) -> Principal | None:
    """The Principal a presented token stands for, or None when it is unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    presented = hash_token(token)
    now = utcnow()
    with db.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == presented))
        if row is None or not hmac.compare_digest(row.token_sha256, presented) or row.revoked_at is not None:
            return None
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        return Principal(name=row.name, scopes=frozenset(row.scopes))


class TokenResolver:
    """``app.state.resolve_token``: ``resolve_token`` behind a short per-process cache (ingest calls it per batch)."""

    def __init__(
        self, db: Database, ttl_s: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic,
        grace_s: float = OUTAGE_GRACE_SECONDS,
    ) -> None:  # fmt: skip
        self.db = db
        self.ttl_s = ttl_s
        self.grace_s = grace_s
        self.clock = clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, token: str) -> Principal | None:
        key = hash_token(token)
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        try:
            principal = resolve_token(self.db, token)
        except OperationalError:  # the database is away: a recently verified token still works
            if hit is not None and hit[1] is not None and now - hit[0] < self.grace_s:
                return hit[1]
            raise
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: random bad tokens must not grow memory
                self._cache.clear()
            self._cache[key] = (now, principal)
        return principal
