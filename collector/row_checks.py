"""Every rule a stored prediction must meet, checked per row, so a batch can be refused as a whole
(the first problem) or row by row (each bad row with its reason, the good ones stored).

Both backends refuse the same input: text neither can hold alike (NUL, non-UTF-8), text past
its column's width, unregistered versions, out-of-range ts, confidence, class and latency,
vectors of the wrong length or holding NaN. Checks are column-wide numpy masks; only the rows
they flag cost Python work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from shiftwatch.collector.registry import VersionInfo
from shiftwatch.errors import Invalid, NotFound, ShiftwatchError
from shiftwatch_client.records import FUTURE_SLACK, MAX_LENGTHS, ROUTES, text_problem
from shiftwatch_client.wire import STRING_COLUMNS, ColumnBatch


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one row of a request cannot be stored: its position in the request, the field, the reason."""

    index: int
    name: str
    reason: str
    kind: type[ShiftwatchError] = Invalid

    @property
    def field(self) -> str:
        return f"predictions[{self.index}].{self.name}"

    def error(self) -> ShiftwatchError:
        """The whole-batch refusal this problem stands for (what a batch that must be stored whole raises)."""
        if self.kind is Invalid:
            return Invalid(self.field, self.reason)
        return self.kind(f"{self.field}: {self.reason}")


# One check: a mask of the rows it refuses, the field, the reason for row i, the error class.
_Check = tuple[np.ndarray, str, Callable[[int], str], type[ShiftwatchError]]


def _text_checks(batch: ColumnBatch) -> Iterator[_Check]:
    for name in STRING_COLUMNS:
        column = getattr(batch, name)
        if not column.size:
            continue
        limit = MAX_LENGTHS[name]
        if column.dtype.itemsize // 4 > limit:
            yield (
                np.char.str_len(column) > limit,
                name,
                _always(f"longer than {limit} characters"),
                Invalid,
            )
        if text_problem("".join(column.tolist())) is None:  # one join keeps the clean case fast
            continue
        problems = [text_problem(value) for value in column.tolist()]
        mask = np.asarray([p is not None for p in problems])
        yield mask, name, _each(problems), Invalid


def _value_checks(
    batch: ColumnBatch, versions: dict[tuple[str, str], VersionInfo], version_ids: np.ndarray, *,
    retention_days: int, now: datetime,
) -> Iterator[_Check]:  # fmt: skip
    n = len(batch)
    num_classes = np.zeros(n, dtype=np.int64)
    dims = np.full(n, -1, dtype=np.int64)
    unknown = np.zeros(n, dtype=bool)
    for key in {(str(m), str(v)) for m, v in zip(batch.model, batch.version)}:
        mask = (batch.model == key[0]) & (batch.version == key[1])
        info = versions.get(key)
        if info is None:
            unknown |= mask
            continue
        version_ids[mask] = info.id
        num_classes[mask] = info.num_classes
        dims[mask] = info.embedding_dim
    yield (unknown, "version",
           lambda i: f"version {batch.version[i]!r} of model {batch.model[i]!r} is not registered", NotFound)  # fmt: skip
    yield (
        ~np.isin(batch.route, ROUTES),
        "route",
        lambda i: f"{batch.route[i]!r} is not one of {', '.join(ROUTES)}",
        Invalid,
    )
    oldest = int((now - timedelta(days=retention_days)).timestamp() * 1e6)
    newest = int((now + FUTURE_SLACK).timestamp() * 1e6)
    yield (
        (batch.ts_us < oldest) | (batch.ts_us > newest), "ts",
        lambda _: f"must lie between now-{retention_days}d (the retention window) and now+1d; check the client clock",
        Invalid,
    )  # fmt: skip
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(batch.confidence) | (batch.confidence < 0) | (batch.confidence > 1)
    yield bad, "confidence", lambda _: "must be a finite number in [0, 1]", Invalid
    yield (
        ~unknown & ((batch.predicted_class < 0) | (batch.predicted_class >= num_classes)), "predicted_class",
        lambda i: f"{int(batch.predicted_class[i])} is outside [0, {int(num_classes[i])})", Invalid,
    )  # fmt: skip
    yield (
        np.isinf(batch.latency_ms) | (batch.latency_ms < 0),
        "latency_ms",
        lambda _: "must be a finite, non-negative number",
        Invalid,
    )
    for name, matrix, expected, what in (
        ("embedding", batch.embeddings, dims, "model version {m}:{v} expects {e}"),
        ("probabilities", batch.probabilities, num_classes, "the model has {e} classes"),
    ):
        if matrix is None:
            continue
        width = matrix.shape[1]
        yield ~unknown & (expected != width), name, _wrong_width(batch, width, expected, what), Invalid
        yield ~np.isfinite(matrix).all(axis=1), name, lambda _: "contains NaN or infinity", Invalid


def _wrong_width(batch: ColumnBatch, width: int, expected: np.ndarray, what: str) -> Callable[[int], str]:
    return lambda i: f"has {width} values; " + what.format(m=batch.model[i], v=batch.version[i], e=int(expected[i]))


def _always(reason: str) -> Callable[[int], str]:
    return lambda _: reason


def _each(reasons: list[str | None]) -> Callable[[int], str]:
    return lambda i: str(reasons[i])


def _position(positions: np.ndarray | None, index: int) -> int:
    return int(positions[index]) if positions is not None else index


def text_problems(batch: ColumnBatch, positions: np.ndarray | None, *, first_only: bool) -> list[RowProblem]:
    """Rows whose text cannot be stored; runs before anything touches the database."""
    return _collect(_text_checks(batch), len(batch), positions, first_only=first_only)


def value_problems(
    batch: ColumnBatch, versions: dict[tuple[str, str], VersionInfo], positions: np.ndarray | None, *,
    retention_days: int, now: datetime, first_only: bool,
) -> tuple[np.ndarray, list[RowProblem]]:  # fmt: skip
    """Each row's model_version id (-1 where unregistered) and the rows that break a rule."""
    version_ids = np.full(len(batch), -1, dtype=np.int64)
    checks = _value_checks(batch, versions, version_ids, retention_days=retention_days, now=now)
    return version_ids, _collect(checks, len(batch), positions, first_only=first_only)


def _collect(checks: Iterator[_Check], n: int, positions: np.ndarray | None, *, first_only: bool) -> list[RowProblem]:
    """Each refused row once, with the first rule it breaks; ``first_only`` stops at the first refused row
    of the first failing rule (a batch refused whole names that one)."""
    flagged = np.zeros(n, dtype=bool)
    found: list[RowProblem] = []
    for mask, name, why, kind in checks:
        fresh = np.flatnonzero(mask & ~flagged)
        if first_only and fresh.size:
            return [RowProblem(_position(positions, int(fresh[0])), name, why(int(fresh[0])), kind)]
        found.extend(RowProblem(_position(positions, int(i)), name, why(int(i)), kind) for i in fresh)
        flagged |= mask
    return sorted(found, key=lambda p: p.index)
