"""Validate a batch of predictions as a whole, then store it in one transaction, ignoring duplicate ids.

Nothing of a batch is written unless every row is valid, and the error names the row
and field; both backends refuse the same input (SQLite would store a NUL that PostgreSQL
refuses). An id is stored once whatever its ts (``prediction_ids``): a re-send with the
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

from shiftwatch.collector.partitions import ensure_partitions
from shiftwatch.collector.records import MAX_LENGTHS, ROUTES, text_problem
from shiftwatch.collector.registry import VersionInfo, version_infos
from shiftwatch.collector.tables import Prediction, PredictionId
from shiftwatch.collector.wire import STRING_COLUMNS, ColumnBatch
from shiftwatch.db import Database, float32_rows, utcnow
from shiftwatch.errors import Conflict, Invalid, NotFound, TooLarge

FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class IngestResult:
    received: int
    stored: int

    @property
    def duplicates(self) -> int:
        return self.received - self.stored


def _row_field(positions: np.ndarray | None, index: int, field: str) -> str:
    row = int(positions[index]) if positions is not None else index
    return f"predictions[{row}].{field}"


def check_text(batch: ColumnBatch, positions: np.ndarray | None = None) -> None:
    """Refuse text neither backend can hold alike (NUL, non-UTF-8) and text past its column's width.

    Runs before anything touches the database: a NUL in a model name must be a 422, not a
    driver error. One join per column keeps the common, clean case fast.
    """
    for name in STRING_COLUMNS:
        column = getattr(batch, name)
        if not column.size:
            continue
        limit = MAX_LENGTHS[name]
        if column.dtype.itemsize // 4 > limit:
            lengths = np.char.str_len(column)
            if (lengths > limit).any():
                bad = int(np.flatnonzero(lengths > limit)[0])
                raise Invalid(_row_field(positions, bad, name), f"longer than {limit} characters")
        if text_problem("".join(column.tolist())) is None:
            continue
        for index, value in enumerate(column.tolist()):
            problem = text_problem(value)
            if problem is not None:
                raise Invalid(_row_field(positions, index, name), problem)


def validate(
    batch: ColumnBatch,
    versions: dict[tuple[str, str], VersionInfo],
    *,
    retention_days: int,
    now: datetime,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """Check every row; return the model_version id of each row. Raises ``Invalid`` naming the first bad field."""
    n = len(batch)

    def first_bad(mask: np.ndarray) -> int | None:
        bad = np.flatnonzero(mask)
        return int(bad[0]) if bad.size else None

    version_ids = np.empty(n, dtype=np.int64)
    num_classes = np.empty(n, dtype=np.int64)
    dims = np.empty(n, dtype=np.int64)
    for key in {(str(m), str(v)) for m, v in zip(batch.model, batch.version)}:
        info = versions.get(key)
        mask = (batch.model == key[0]) & (batch.version == key[1])
        if info is None:
            index = int(np.flatnonzero(mask)[0])
            raise NotFound(
                f"{_row_field(positions, index, 'version')}: version {key[1]!r} of model {key[0]!r} is not registered"
            )
        version_ids[mask] = info.id
        num_classes[mask] = info.num_classes
        dims[mask] = info.embedding_dim

    bad = first_bad(~np.isin(batch.route, ROUTES))
    if bad is not None:
        raise Invalid(_row_field(positions, bad, "route"), f"{batch.route[bad]!r} is not one of {', '.join(ROUTES)}")

    oldest = int((now - timedelta(days=retention_days)).timestamp() * 1e6)
    newest = int((now + FUTURE_SLACK).timestamp() * 1e6)
    bad = first_bad((batch.ts_us < oldest) | (batch.ts_us > newest))
    if bad is not None:
        raise Invalid(
            _row_field(positions, bad, "ts"),
            f"must lie between now-{retention_days}d (the retention window) and now+1d; check the client clock",
        )
    bad = first_bad(~np.isfinite(batch.confidence) | (batch.confidence < 0) | (batch.confidence > 1))
    if bad is not None:
        raise Invalid(_row_field(positions, bad, "confidence"), "must be a finite number in [0, 1]")
    bad = first_bad((batch.predicted_class < 0) | (batch.predicted_class >= num_classes))
    if bad is not None:
        raise Invalid(
            _row_field(positions, bad, "predicted_class"),
            f"{int(batch.predicted_class[bad])} is outside [0, {int(num_classes[bad])})",
        )
    bad = first_bad(np.isinf(batch.latency_ms) | (batch.latency_ms < 0))
    if bad is not None:
        raise Invalid(_row_field(positions, bad, "latency_ms"), "must be a finite, non-negative number")
    if batch.embeddings is not None:
        d = batch.embeddings.shape[1]
        bad = first_bad(dims != d)
        if bad is not None:
            raise Invalid(
                _row_field(positions, bad, "embedding"),
                f"has {d} values; model version {batch.model[bad]}:{batch.version[bad]} expects {int(dims[bad])}",
            )
        bad = first_bad(~np.isfinite(batch.embeddings).all(axis=1))
        if bad is not None:
            raise Invalid(_row_field(positions, bad, "embedding"), "contains NaN or infinity")
    if batch.probabilities is not None:
        k = batch.probabilities.shape[1]
        bad = first_bad(num_classes != k)
        if bad is not None:
            raise Invalid(
                _row_field(positions, bad, "probabilities"),
                f"has {k} values; the model has {int(num_classes[bad])} classes",
            )
        bad = first_bad(~np.isfinite(batch.probabilities).all(axis=1))
        if bad is not None:
            raise Invalid(_row_field(positions, bad, "probabilities"), "contains NaN or infinity")
    return version_ids


def ingest(
    db: Database,
    chunks: Sequence[tuple[ColumnBatch, np.ndarray | None]],
    *,
    max_rows: int,
    retention_days: int,
) -> IngestResult:
    """Validate all chunks (each with its rows' positions in the request), then store them in one transaction."""
    received = sum(len(chunk) for chunk, _ in chunks)
    if received > max_rows:
        raise TooLarge(f"predictions: {received} rows in one batch, over the limit of {max_rows}")
    if received == 0:
        raise Invalid("predictions", "the batch is empty")
    now = utcnow()
    for chunk, positions in chunks:
        check_text(chunk, positions)
    keys = {(str(m), str(v)) for chunk, _ in chunks for m, v in zip(chunk.model, chunk.version)}
    versions = _cached_versions(db, keys)
    rows: list[dict] = []
    places: list[int] = []  # each row's position in the request, for error messages
    for chunk, positions in chunks:
        version_ids = validate(chunk, versions, retention_days=retention_days, now=now, positions=positions)
        rows.extend(_rows(chunk, version_ids, now))
        places.extend(range(len(chunk)) if positions is None else positions.tolist())
    rows, places = _first_of_each_id(rows, places)
    with db.engine.begin() as connection:
        ensure_partitions(connection, {row["ts"].date() for row in rows})
        stored = _store(connection, rows, places)
    return IngestResult(received=received, stored=stored)


def _moved_id(place: int, row: dict, stored_ts: datetime) -> Conflict:
    return Conflict(
        f"predictions[{place}].id: {row['id']} is already stored with ts {stored_ts.isoformat()}, "
        f"not {row['ts'].isoformat()}; a re-send must keep the ts it was first sent with"
    )


def _first_of_each_id(rows: list[dict], places: list[int]) -> tuple[list[dict], list[int]]:
    """Drop rows that repeat an earlier row of the batch (same id, same ts); refuse an id given two ts."""
    first: dict[uuid.UUID, dict] = {}
    kept_rows, kept_places = [], []
    for row, place in zip(rows, places):
        earlier = first.setdefault(row["id"], row)
        if earlier is row:
            kept_rows.append(row)
            kept_places.append(place)
        elif earlier["ts"] != row["ts"]:
            raise _moved_id(place, row, earlier["ts"])
    return kept_rows, kept_places


def _store(connection: Connection, rows: list[dict], places: list[int]) -> int:
    """Write the rows and their ids; returns how many were new. Raises ``Conflict`` for a moved id."""
    if connection.dialect.name != "postgresql":
        return _store_idempotent(connection, rows, places)
    import psycopg
    from sqlalchemy.exc import DataError

    try:
        try:
            with connection.begin_nested():
                _copy_postgres(connection, rows)
            return len(rows)
        except psycopg.errors.UniqueViolation:  # a re-send: take the idempotent path
            return _store_idempotent(connection, rows, places)
    except (psycopg.DataError, DataError) as exc:
        raise _unstorable(getattr(exc, "orig", None) or exc, places) from None


def _store_idempotent(connection: Connection, rows: list[dict], places: list[int]) -> int:
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
    for row, place in zip(rows, places):
        if stored_ts[row["id"]] != row["ts"]:
            raise _moved_id(place, row, stored_ts[row["id"]])
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
    """Clear the cache (tests that empty and refill the database need this)."""
    _VERSION_CACHE.clear()


def _rows(batch: ColumnBatch, version_ids: np.ndarray, now: datetime) -> list[dict]:
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
                "embedding": embeddings[i] if embeddings is not None else None,
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
