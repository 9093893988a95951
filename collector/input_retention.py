"""Deleting stored inputs nothing refers to any more: the input store under the retention policy.

An input file is kept while any row of a table with an ``input_ref`` column names it (predictions
within retention, labeling tasks and their labels, which retraining reads, flagged samples).
Every such table is found from the ORM metadata, so a new one is covered without listing it.
A file younger than the grace period is kept: the gateway writes the file just before the row
that refers to it is committed (and ``InputStore.put`` refreshes an existing file's age).
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Column, select
from sqlalchemy.engine import Engine

from shiftwatch.db import Base, import_all_tables


def referencing_columns() -> list[Column]:
    """Every ``input_ref`` column of every table."""
    import_all_tables()
    return [table.c.input_ref for table in Base.metadata.sorted_tables if "input_ref" in table.c]


def referenced_inputs(engine: Engine) -> set[str]:
    refs: set[str] = set()
    with engine.connect() as connection:
        for column in referencing_columns():
            refs.update(connection.scalars(select(column).where(column.is_not(None)).distinct()))
    return refs


def sweep_inputs(engine: Engine, data_dir: Path, grace_s: float, now: float | None = None) -> int:
    """Delete input files no row refers to and older than ``grace_s``; returns how many were deleted."""
    root = Path(data_dir) / "inputs"
    if not root.is_dir():
        return 0
    now = time.time() if now is None else now
    # Files first, references second: a file written after the listing is not looked at this run.
    candidates = [path for path in root.iterdir() if path.is_file() and path.stat().st_mtime < now - grace_s]
    if not candidates:
        return 0
    keep = referenced_inputs(engine)
    removed = 0
    for path in candidates:
        ref = f"inputs/{path.name}"
        if ref in keep:
            continue
        try:
            if path.stat().st_mtime >= now - grace_s:  # put() refreshed it since the listing: about to be used
                continue
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed
