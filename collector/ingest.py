"""Validate a batch of predictions, then store it in one transaction, ignoring duplicate ids.

Nothing of a batch is written unless every row is valid, and the error names the row and
field; or, asked for ``partial``, the valid rows are stored and each bad row is refused with
its reason (collector/row_checks.py holds the rules, the same on both backends). An id is stored once whatever its ts (``prediction_ids``): a re-send with the
same ts is a duplicate, another ts for a stored id is a 409. PostgreSQL takes the rows
through binary COPY; only a batch with a known id falls back to ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shiftwatch.collector.embedding_keep import ROLLOUT_MODELS, keeps_embedding
from shiftwatch.collector.partitions import ensure_partitions
from shiftwatch.collector.registry import VersionInfo, version_infos
from shiftwatch.collector.row_checks import RowProblem, text_problems, value_problems
from shiftwatch.collector.tables import Prediction, PredictionId
from shiftwatch.db import Database, float32_rows, utcnow
from shiftwatch.errors import Conflict, Invalid, TooLarge
from shiftwatch_client.records import MAX_LENGTHS as _MAX_LENGTHS
from shiftwatch_client.wire import ColumnBatch

MAX_LENGTHS = _MAX_LENGTHS  # re-exported: rollout/prediction_log.py reads the widths here


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What became of a batch: rows received, newly stored, and (row by row) refused."""

    received: int
    stored: int
    refused: tuple[RowProblem, ...] = ()

    @property
    def duplicates(self) -> int:
        return self.received - self.stored - len(self.refused)


@dataclass(frozen=True, slots=True)
class Checked:
    """A batch past validation: the rows to store (per chunk: columns, version ids, request positions) and the refused."""

    received: int
    kept: tuple[tuple[ColumnBatch, np.ndarray, np.ndarray], ...]
    refused: tuple[RowProblem, ...]


def check(
    db: Database,
    chunks: Sequence[tuple[ColumnBatch, np.ndarray | None]],
    *,
    max_rows: int,
    retention_days: int,
    partial: bool = False,
    refused: Sequence[RowProblem] = (),
) -> Checked:
    """Validate all chunks (each with its rows' positions in the request) without writing anything.

    Without ``partial`` the first bad row raises (its 4xx); with it, each bad row is set aside with its
    reason. The broker path (collector/broker.py) publishes what this keeps; ``ingest`` stores it.
    """
    received = sum(len(chunk) for chunk, _ in chunks) + len(refused)
    if received > max_rows:
        raise TooLarge(f"predictions: {received} rows in one batch, over the limit of {max_rows}")
    if received == 0:
        raise Invalid("predictions", "the batch is empty")
    now = utcnow()
    refused = list(refused)
    for chunk, positions in chunks:
        refused.extend(text_problems(chunk, positions, first_only=not partial))
        if refused and not partial:
            raise refused[0].error()
    keys = {(str(m), str(v)) for chunk, _ in chunks for m, v in zip(chunk.model, chunk.version)}
    versions = _cached_versions(db, keys)
    kept = []
    for chunk, positions in chunks:
        version_ids, problems = value_problems(
            chunk, versions, positions, retention_days=retention_days, now=now, first_only=not partial
        )
        if problems and not partial:
            raise problems[0].error()
        already = {p.index for p in refused}
        refused.extend(p for p in problems if p.index not in already)
        where = np.arange(len(chunk)) if positions is None else positions
        keep = ~np.isin(where, [p.index for p in refused])
        if keep.any():
            kept.append((chunk.take(keep), version_ids[keep], where[keep]))
    return Checked(received, tuple(kept), tuple(refused))


def ingest(
    db: Database,
    chunks: Sequence[tuple[ColumnBatch, np.ndarray | None]],
    *,
    max_rows: int,
    retention_days: int,
    partial: bool = False,
    refused: Sequence[RowProblem] = (),
    embedding_keep_rate: float = 1.0,
) -> IngestResult:
    """Validate all chunks (``check``), then store them in one transaction.

    By default a batch is stored whole or not at all, refused for its first bad row. With ``partial``
    the good rows are stored and each bad row comes back in ``refused`` with its reason, so one bad
    row never costs its batch (what the SDK and ``replay-rejected`` ask for); ``refused`` are rows
    the parser already set aside. ``embedding_keep_rate`` (SHIFTWATCH_EMBEDDING_KEEP_RATE) is the
    share of rows that keep their embedding besides rollout rows (``collector.embedding_keep``).
    """
    checked = check(db, chunks, max_rows=max_rows, retention_days=retention_days, partial=partial, refused=refused)
    now = utcnow()
    problems = list(checked.refused)
    rows: list[dict] = []
    places: list[int] = []  # each row's position in the request, for error messages
    sampling = embedding_keep_rate < 1.0 and any(chunk.embeddings is not None for chunk, _, _ in checked.kept)
    in_rollout = ROLLOUT_MODELS.names(db) if sampling else frozenset()
    for chunk, version_ids, where in checked.kept:
        embedded = keeps_embedding(chunk.ids, chunk.route, chunk.model, embedding_keep_rate, in_rollout) if sampling else None
        rows.extend(_rows(chunk, version_ids, now, embedded))
        places.extend(where.tolist())
    rows, places = _first_of_each_id(rows, places, problems if partial else None)
    if rows:
        with db.engine.begin() as connection:
            ensure_partitions(connection, {row["ts"].date() for row in rows})
            stored = _store(connection, rows, places, problems if partial else None)
    else:
        stored = 0
    return IngestResult(received=checked.received, stored=stored,
                        refused=tuple(sorted(problems, key=lambda p: p.index)))  # fmt: skip


def _moved_id(place: int, row: dict, stored_ts: datetime) -> RowProblem:
    return RowProblem(
        place, "id",
        f"{row['id']} is already stored with ts {stored_ts.isoformat()}, not {row['ts'].isoformat()}; "
        "a re-send must keep the ts it was first sent with",
        Conflict,
    )  # fmt: skip


def _first_of_each_id(
    rows: list[dict], places: list[int], refused: list[RowProblem] | None = None
) -> tuple[list[dict], list[int]]:
    """Drop rows that repeat an earlier row of the batch (same id, same ts); an id given two ts is
    refused: the whole batch, or (``refused`` given) that row."""
    first: dict[uuid.UUID, dict] = {}
    kept_rows, kept_places = [], []
    for row, place in zip(rows, places):
        earlier = first.setdefault(row["id"], row)
        if earlier is row:
            kept_rows.append(row)
            kept_places.append(place)
        elif earlier["ts"] != row["ts"]:
            _refuse(_moved_id(place, row, earlier["ts"]), refused)
    return kept_rows, kept_places


def _refuse(problem: RowProblem, refused: list[RowProblem] | None) -> None:
    if refused is None:
        raise problem.error()
    refused.append(problem)


def _store(connection: Connection, rows: list[dict], places: list[int], refused: list[RowProblem] | None = None) -> int:
    """Write the rows and their ids; returns how many were new. A moved id raises ``Conflict``, or
    with ``refused`` given, is refused alone."""
    if connection.dialect.name != "postgresql":
        return _store_idempotent(connection, rows, places, refused)
    import psycopg
    from sqlalchemy.exc import DataError

    try:
        try:
            with connection.begin_nested():
                _copy_postgres(connection, rows)
            return len(rows)
        except psycopg.errors.UniqueViolation:  # a re-send: take the idempotent path
            return _store_idempotent(connection, rows, places, refused)
    except (psycopg.DataError, DataError) as exc:
        raise _unstorable(getattr(exc, "orig", None) or exc, places) from None


def _store_idempotent(
    connection: Connection, rows: list[dict], places: list[int], refused: list[RowProblem] | None
) -> int:
    """Claim each id once (ON CONFLICT DO NOTHING), refuse ids stored with another ts, insert the new rows."""
    postgres = connection.dialect.name == "postgresql"
    dialect_insert = postgresql.insert if postgres else sqlite.insert
    # Claiming the ids first takes the row locks (PostgreSQL) or the write lock (SQLite), so the
    # ts read back below is final even while another replica stores the same ids.
    connection.execute(
        dialect_insert(PredictionId).on_conflict_do_nothing(), [{"id": r["id"], "ts": r["ts"]} for r in rows]
    )
    stored_ts: dict[uuid.UUID, datetime] = {}
    ids = [row["id"] for row in rows]
    for first in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
        query = select(PredictionId.id, PredictionId.ts).where(PredictionId.id.in_(ids[first : first + 900]))
        stored_ts.update((id_, ts) for id_, ts in connection.execute(query))
    moved = [(row, place) for row, place in zip(rows, places) if stored_ts[row["id"]] != row["ts"]]
    for row, place in moved:
        _refuse(_moved_id(place, row, stored_ts[row["id"]]), refused)
    if moved:
        rows = [row for row in rows if stored_ts[row["id"]] == row["ts"]]
        if not rows:
            return 0
    if postgres:
        return _insert_postgres_idempotent(connection, rows)
    return connection.execute(insert(Prediction).prefix_with("OR IGNORE"), rows).rowcount or 0


_COPY_CONTEXT = re.compile(r"line (\d+)(?:, column (\w+))?")


def _unstorable(exc: Exception, places: list[int]) -> Invalid:
    """PostgreSQL refused a value that validation let through: a 422 naming the row and field COPY reports."""
    import psycopg

    diag = exc.diag if isinstance(exc, psycopg.Error) else None
    found = _COPY_CONTEXT.search((diag.context or "") if diag is not None else "")
    reason = str(exc).splitlines()[0][:200]
    if found is None or not 0 < int(found.group(1)) <= len(places):
        return Invalid("predictions", f"a value cannot be stored ({reason})")
    return Invalid(f"predictions[{places[int(found.group(1)) - 1]}].{found.group(2) or 'row'}", reason)


# What ingest checks of a version (id, embedding size, class count) never changes once
# registered, so it is cached per process: one fewer round trip per batch.
_VERSION_CACHE: dict[tuple[str, str, str], VersionInfo] = {}


def _cached_versions(db: Database, keys: set[tuple[str, str]]) -> dict[tuple[str, str], VersionInfo]:
    url = str(db.engine.url)
    found = {key: _VERSION_CACHE[(url, *key)] for key in keys if (url, *key) in _VERSION_CACHE}
    missing = keys - found.keys()
    if missing:
        with db.session() as session:
            fresh = version_infos(session, missing)
        for key, info in fresh.items():
            _VERSION_CACHE[(url, *key)] = info
        found.update(fresh)
    return found


def forget_cached_versions() -> None:
    """Clear the caches, versions and models in rollout (tests that empty and refill the database need this)."""
    _VERSION_CACHE.clear()
    ROLLOUT_MODELS.forget()


def _rows(batch: ColumnBatch, version_ids: np.ndarray, now: datetime, embedded: np.ndarray | None = None) -> list[dict]:
    """The batch as row dicts; a row whose ``embedded`` is False is stored without its embedding."""
    n = len(batch)
    # Encoded here, not by the column type: PostgreSQL's COPY bypasses column types.
    embeddings = float32_rows(batch.embeddings) if batch.embeddings is not None else None
    probabilities = float32_rows(batch.probabilities) if batch.probabilities is not None else None
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        latency = float(batch.latency_ms[i])
        out.append(
            {
                "id": uuid.UUID(bytes=batch.ids[i].tobytes()),
                "ts": epoch + timedelta(microseconds=int(batch.ts_us[i])),
                "model_version_id": int(version_ids[i]),
                "route": str(batch.route[i]),
                "request_id": str(batch.request_id[i]) or None,
                "stream_id": str(batch.stream_id[i]) or None,
                "predicted_class": int(batch.predicted_class[i]),
                "confidence": float(batch.confidence[i]),
                "probabilities": probabilities[i] if probabilities is not None else None,
                "embedding": embeddings[i] if embeddings is not None and (embedded is None or embedded[i]) else None,
                "input_ref": str(batch.input_ref[i]) or None,
                "latency_ms": None if latency != latency else latency,
                "received_at": now,
            }
        )
    return out


COLUMNS = (
    "id", "ts", "model_version_id", "route", "request_id", "stream_id", "predicted_class",
    "confidence", "probabilities", "embedding", "input_ref", "latency_ms", "received_at",
)  # fmt: skip
COPY_TYPES = (
    "uuid", "timestamptz", "int4", "varchar", "varchar", "varchar", "int4",
    "float8", "bytea", "bytea", "varchar", "float8", "timestamptz",
)  # fmt: skip


def _copy_postgres(connection: Connection, rows: list[dict]) -> None:
    """Binary COPY of the ids into ``prediction_ids`` and the rows into ``predictions``; a stored id
    raises ``UniqueViolation``, and the caller rolls back to its savepoint.

    Re-sends are rare, so nearly every batch goes at COPY speed (bench/ingest.py measures the
    path, and what the id table costs against raw COPY into ``predictions`` alone).
    """
    raw: Any = connection.connection.driver_connection  # the psycopg connection
    with raw.cursor() as cursor:
        with cursor.copy("COPY prediction_ids (id, ts) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "timestamptz"])
            for row in rows:
                copy.write_row((row["id"], row["ts"]))
        with cursor.copy(f"COPY predictions ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(COPY_TYPES))
            for row in rows:
                copy.write_row(tuple(row[c] for c in COLUMNS))


def _insert_postgres_idempotent(connection: Connection, rows: list[dict]) -> int:
    """One ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`` with binary parameters."""
    columns = ", ".join(COLUMNS)
    arrays = ", ".join(f"%b::{kind}[]" for kind in COPY_TYPES)  # %b: binary parameters, no text escaping
    raw: Any = connection.connection.driver_connection  # the psycopg connection
    with raw.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO predictions ({columns}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING",
            [[row[c] for row in rows] for c in COLUMNS],
        )
        return cursor.rowcount
