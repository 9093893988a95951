"""Parsing a JSON batch of predictions: its memory cost charged up front, and (asked for ``partial``)
rows the schema refuses set aside one by one instead of refusing the batch.

Parsing JSON costs far more memory than its bytes: each number becomes a parse-tree node and
then a Python float in a list (~70 bytes for a 2-byte ``0,``), each row a few KiB of objects.
The charge is therefore per byte, per value (commas bound the value count) and per object
(braces bound the rows), counted in one pass over the bytes before parsing. A body whose
charge exceeds the whole parse budget is refused (413) before it is parsed, so the budget
bounds what JSON parsing can hold at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from shiftwatch.collector.bodies import Reservation
from shiftwatch.collector.row_checks import RowProblem
from shiftwatch.collector.schemas import PredictionBatchIn, PredictionIn, chunks_of
from shiftwatch.errors import Invalid, TooLarge
from shiftwatch_client.wire import ColumnBatch

# Peak bytes held while parsing a batch into rows and columns (pydantic-core's parse tree, Python
# floats in lists, models, records), measured on CPython 3.11 / pydantic 2 with bench/json_parse_cost.py
# (bench/results/json_parse_cost.json) and rounded up: per body byte, per JSON value (a comma), per
# object (a row). A 16 MiB body of 8.4 M values held ~563 MiB; one of 100 k small rows ~300 MiB.
JSON_BYTE_COST = 4
JSON_VALUE_COST = 70
JSON_OBJECT_COST = 2400

Chunks = list[tuple[ColumnBatch, np.ndarray]]


def parse_cost(body: bytes) -> int:
    """Bytes to reserve before parsing ``body``: an upper bound on what the parse will hold at its peak."""
    values, objects = body.count(b",") + 1, body.count(b"{")
    return len(body) * JSON_BYTE_COST + values * JSON_VALUE_COST + objects * JSON_OBJECT_COST


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


def charge_parse(body: bytes, reservation: Reservation) -> None:
    """Reserve the parse's cost; 413 when it alone would exceed the server's whole parse budget."""
    cost = parse_cost(body)
    if cost > reservation.budget.limit:
        raise TooLarge(
            f"body: parsing this JSON would hold ~{_size(cost)}, over the server's parse budget of "
            f"{_size(reservation.budget.limit)} (SHIFTWATCH_MAX_PARSE_BYTES); send fewer values per "
            "request, or the .npz columns the SDK sends"
        )
    reservation.charge(cost)


class _LooseBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictions: list[Any]


def _location(error: ErrorDetails) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")


def parse_rows(body: bytes, *, partial: bool) -> tuple[Chunks, list[RowProblem]]:
    """The batch's rows as column chunks; with ``partial``, rows the schema refuses come back as problems.

    Malformed JSON and a body that is not ``{"predictions": [...]}`` are refused whole either way.
    """
    try:
        return PredictionBatchIn.model_validate_json(body).to_chunks(), []
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "json_invalid":
            raise Invalid("body", f"malformed JSON: {error['msg']}") from None
        row_level = all(len(e["loc"]) >= 2 and e["loc"][0] == "predictions" and isinstance(e["loc"][1], int)
                        for e in exc.errors())  # fmt: skip
        if not (partial and row_level):
            raise Invalid(_location(error) or "body", error["msg"]) from None
    rows = _LooseBatch.model_validate_json(body).predictions
    good: list[PredictionIn] = []
    positions: list[int] = []
    refused: list[RowProblem] = []
    for index, row in enumerate(rows):
        try:
            good.append(PredictionIn.model_validate(row))
            positions.append(index)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(part) for part in first["loc"]) or "row"
            refused.append(RowProblem(index, name, first["msg"]))
    rows.clear()
    return chunks_of(good, np.asarray(positions, dtype=np.int64)), refused
