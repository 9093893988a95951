"""Issue 16.16: an acknowledged write is on disk, on both backends (docs/security.md, "What an acknowledgement means")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text


def durability_setting(db) -> str:
    with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[connection.execute(text("PRAGMA synchronous")).scalar()]
        return connection.execute(text("SHOW synchronous_commit")).scalar()


def test_every_connection_commits_durably(db):
    # Before: SQLite ran synchronous=NORMAL (the last commits can be lost on power loss).
    with ThreadPoolExecutor(4) as pool:  # several pooled connections, each opened in its own thread
        seen = set(pool.map(lambda _: durability_setting(db), range(8)))
    durable = {"sqlite": {"FULL", "EXTRA"}, "postgresql": {"on", "remote_write", "remote_apply"}}[db.engine.dialect.name]
    assert seen and seen <= durable, seen
