"""Both backends refuse the same text (NUL, non-UTF-8, too long) with a 422 naming the row and field,
and an id is stored once whatever ts it is re-sent with (issue 16, items 2 and 4)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from shiftwatch.collector.ingest import _rows, _store
from shiftwatch.collector.partitions import ensure_partitions
from shiftwatch.collector.tables import Prediction, PredictionId
from shiftwatch.db import utcnow
from shiftwatch.errors import Invalid
from shiftwatch_client.records import to_columns
from shiftwatch_client.wire import CONTENT_TYPE
from tests.support.collector import as_json, as_npz, records


def count(db, table=Prediction) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)))


def post(api, batch, fmt: str):
    if fmt == "json":
        return api.post("/v1/predictions", json=as_json(batch))
    return api.post("/v1/predictions", content=as_npz(batch), headers={"content-type": CONTENT_TYPE})


# npz carries only inner NULs: numpy drops trailing ones from its strings (Client.log refuses both).
# A NUL in a model name must be a 422 before the version lookup sends it to PostgreSQL.
@pytest.mark.parametrize(
    ("fmt", "field", "value", "why"),
    [("json", "request_id", "a\x00b", "NUL"), ("json", "stream_id", "cam\x00", "NUL"),
     ("json", "request_id", "\x00", "NUL"), ("npz", "request_id", "a\x00b", "NUL"),
     ("npz", "input_ref", "\x00ref", "NUL"), ("npz", "model", "dig\x00its", "NUL"),
     ("npz", "stream_id", "cam-\ud800", "UTF-8"),
     ("json", "request_id", "r" * 201, "200"), ("npz", "request_id", "r" * 201, "200")],
)  # fmt: skip
def test_unstorable_text_is_a_422_naming_the_row_and_nothing_is_stored(
    api, db, digits_model, fmt, field, value, why
) -> None:
    batch = records(6, seed=1)
    setattr(batch[4], field, value)
    response = post(api, batch, fmt)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == f"predictions[4].{field}"
    assert why in response.json()["detail"]
    assert count(db) == 0


@pytest.mark.parametrize("fmt", ["json", "npz"])
def test_id_resent_with_another_ts_is_a_409_and_stored_once(api, db, digits_model, fmt) -> None:
    first = records(10, seed=5)
    assert post(api, first, fmt).json()["stored"] == 10
    moved = records(10, seed=6)  # a fresh batch that repeats one stored id, one second later
    moved[7].id = first[3].id
    moved[7].ts = first[3].ts + timedelta(seconds=1)
    response = post(api, moved, fmt)
    assert response.status_code == 409, response.text
    assert f"predictions[7].id: {first[3].id}" in response.json()["detail"]
    assert count(db) == 10, "nothing of the refused batch is stored"
    assert count(db, PredictionId) == 10


@pytest.mark.parametrize("fmt", ["json", "npz"])
def test_resend_with_the_same_ts_mixed_with_new_rows_stores_only_the_new(api, db, digits_model, fmt) -> None:
    first = records(10, seed=7)
    assert post(api, first, fmt).json()["stored"] == 10
    mixed = first[:4] + records(6, seed=8)
    assert post(api, mixed, fmt).json() == {"received": 10, "stored": 6, "duplicates": 4}
    assert count(db) == 16


def test_an_id_twice_in_one_batch_is_stored_once_or_refused_if_its_ts_differs(api, db, digits_model) -> None:
    batch = records(5, seed=9)
    twice = [*batch, batch[2]]
    assert post(api, twice, "npz").json() == {"received": 6, "stored": 5, "duplicates": 1}
    other = records(3, seed=10)
    clash = [*other, records(1, seed=11, id=other[0].id, ts=other[0].ts - timedelta(seconds=5))[0]]
    response = post(api, clash, "npz")
    assert response.status_code == 409
    assert "predictions[3].id" in response.json()["detail"]
    assert count(db) == 5


def test_one_batch_sent_from_four_threads_at_once_is_stored_once(api, db, digits_model) -> None:
    # The idempotent path under concurrency: the same ids sent from threads at once are stored once.
    from concurrent.futures import ThreadPoolExecutor

    batch = records(50, seed=12)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(api, batch, "npz").json(), range(4)))
    assert sum(a["stored"] for a in answers) == 50
    assert count(db) == 50
    assert np.all([a["received"] == 50 for a in answers])


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite stores any text; validation refuses it there (above)
def test_a_value_postgres_refuses_past_validation_is_a_422_naming_the_row_and_column(backend, db, digits_model) -> None:
    # The backstop behind validation: a DataError from COPY names the row and column, never a 500.
    batch = records(5, seed=13)
    batch[3].request_id = "a\x00b"  # past check_text, as a validation gap would let it
    rows = _rows(to_columns(batch), np.full(5, digits_model.id), utcnow())
    with pytest.raises(Invalid) as refused, db.engine.begin() as connection:
        ensure_partitions(connection, {row["ts"].date() for row in rows})
        _store(connection, rows, [10, 11, 12, 13, 14])
    assert refused.value.field == "predictions[13].request_id"
    assert count(db) == 0 and count(db, PredictionId) == 0
