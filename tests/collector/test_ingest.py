"""POST /v1/predictions: both formats store rows, re-sends are idempotent, bad input is refused whole."""

from __future__ import annotations

import gzip
import json
from datetime import UTC

import numpy as np
import pytest
from sqlalchemy import func, select

from shiftwatch.collector import queries
from shiftwatch.collector.tables import Prediction
from shiftwatch_client.wire import CONTENT_TYPE
from tests.support.collector import as_json, as_npz, records


def stored(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


def post_npz(api, batch, **headers):
    return api.post("/v1/predictions", content=as_npz(batch), headers={"content-type": CONTENT_TYPE, **headers})


def test_json_batch_is_stored_with_every_field(api, db, digits_model) -> None:
    batch = records(20)
    response = api.post("/v1/predictions", json=as_json(batch))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 20, "stored": 20, "duplicates": 0}
    with db.session() as session:
        window = queries.window(session, digits_model.id)
    assert len(window) == 20
    np.testing.assert_allclose(window.embeddings, np.stack([r.embedding for r in batch]), rtol=1e-6)
    np.testing.assert_allclose(window.probabilities, np.stack([r.probabilities for r in batch]), rtol=1e-6)
    assert window.stream_id == [r.stream_id for r in batch]
    assert window.request_id == [r.request_id for r in batch]


def test_binary_batch_is_stored_and_gzip_is_accepted(api, db, digits_model) -> None:
    batch = records(300, seed=1)
    body = gzip.compress(as_npz(batch))
    response = api.post(
        "/v1/predictions", content=body, headers={"content-type": CONTENT_TYPE, "content-encoding": "gzip"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 300
    assert stored(db) == 300


@pytest.mark.parametrize("fmt", ["json", "npz"])
def test_duplicate_batch_is_stored_once(api, db, digits_model, fmt) -> None:
    batch = records(50, seed=2)
    send = (lambda: api.post("/v1/predictions", json=as_json(batch))) if fmt == "json" else (lambda: post_npz(api, batch))
    assert send().json()["stored"] == 50
    again = send().json()
    assert again == {"received": 50, "stored": 0, "duplicates": 50}
    assert stored(db) == 50


def test_wrong_embedding_dimension_names_the_row_and_writes_nothing(api, db, digits_model) -> None:
    batch = records(10, seed=3)
    payload = as_json(batch)
    payload["predictions"][7]["embedding"] = [0.0] * 63
    response = api.post("/v1/predictions", json=payload)
    assert response.status_code == 422
    assert response.json()["field"] == "predictions[7].embedding"
    assert "expects 64" in response.json()["detail"]
    assert stored(db) == 0


def test_nan_in_binary_embedding_is_refused_whole(api, db, digits_model) -> None:
    batch = records(10, seed=4)
    batch[3].embedding[5] = np.nan
    response = post_npz(api, batch)
    assert response.status_code == 422
    assert response.json()["field"] == "predictions[3].embedding"
    assert stored(db) == 0


def test_nan_in_json_is_refused(api, db, digits_model) -> None:
    payload = json.dumps(as_json(records(3))).replace('"confidence": ', '"confidence": NaN, "x": ', 1)
    response = api.post("/v1/predictions", content=payload, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422)
    assert stored(db) == 0


def test_unknown_model_version_is_404_naming_it(api, db, digits_model) -> None:
    batch = records(5, version="v9")
    response = api.post("/v1/predictions", json=as_json(batch))
    assert response.status_code == 404
    assert "'v9'" in response.json()["detail"]
    assert stored(db) == 0


def test_malformed_json_is_400_naming_the_body(api, digits_model) -> None:
    response = api.post("/v1/predictions", content=b'{"predictions": [', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["field"] == "body"
    assert "malformed JSON" in response.json()["detail"]


def test_payload_over_the_size_limit_is_413(app, api, digits_model) -> None:
    app.state.settings.max_request_bytes = 10_000
    response = post_npz(api, records(100))
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_too_many_rows_is_413(app, api, db, digits_model) -> None:
    app.state.settings.max_batch_rows = 10
    response = post_npz(api, records(11))
    assert response.status_code == 413
    assert stored(db) == 0


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [("confidence", 1.5, 422), ("predicted_class", 10, 422), ("route", "blue", 422), ("latency_ms", -1.0, 422)],
)
def test_out_of_range_fields_are_named(api, db, digits_model, field, value, status) -> None:
    payload = as_json(records(4))
    payload["predictions"][2][field] = value
    response = api.post("/v1/predictions", json=payload)
    assert response.status_code == status
    assert response.json()["field"] == f"predictions[2].{field}"
    assert stored(db) == 0


def test_timestamp_outside_retention_is_refused(api, db, digits_model) -> None:
    from datetime import datetime, timedelta

    batch = records(3, ts=datetime.now(UTC) - timedelta(days=400))
    response = post_npz(api, batch)
    assert response.status_code == 422
    assert response.json()["field"] == "predictions[0].ts"


def test_not_an_npz_body_is_422(api, digits_model) -> None:
    response = api.post("/v1/predictions", content=b"hello", headers={"content-type": CONTENT_TYPE})
    assert response.status_code == 422
    assert response.json()["field"] == "body"


def test_pages_walk_every_prediction_once_in_time_order(api, digits_model) -> None:
    batch = records(25, seed=5)
    assert api.post("/v1/predictions", json=as_json(batch)).status_code == 200
    seen, cursor = [], None
    while True:
        params = {"model": "digits", "version": "v1", "limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/predictions", params=params).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(r.id) for r in batch]


def test_page_includes_vectors_only_when_asked(api, digits_model) -> None:
    api.post("/v1/predictions", json=as_json(records(2)))
    plain = api.get("/v1/predictions", params={"model": "digits", "version": "v1"}).json()["items"][0]
    full = api.get(
        "/v1/predictions", params={"model": "digits", "version": "v1", "include_vectors": True}
    ).json()["items"][0]
    assert plain["embedding"] is None
    assert len(full["embedding"]) == 64


def test_metrics_count_ingested_and_rejected(api, digits_model) -> None:
    def value(text: str, name: str) -> float:
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

    before = api.get("/metrics").text
    api.post("/v1/predictions", json=as_json(records(7, seed=9)))
    api.post("/v1/predictions", json=as_json(records(2, version="nope")))
    after = api.get("/metrics").text
    assert value(after, "shiftwatch_predictions_ingested_total") - value(before, "shiftwatch_predictions_ingested_total") == 7
    assert value(after, "shiftwatch_predictions_rejected_total") - value(before, "shiftwatch_predictions_rejected_total") == 1
    assert "shiftwatch_ingest_seconds_bucket" in after


def test_model_and_version_registration_api(api) -> None:
    assert api.post("/v1/models", json={"name": "cats", "class_names": ["cat", "dog"]}).status_code == 201
    response = api.post("/v1/models/cats/versions", json={"version": "a", "embedding_dim": 8})
    assert response.status_code == 201
    assert [v["version"] for v in api.get("/v1/models/cats/versions").json()] == ["a"]
    conflict = api.post("/v1/models", json={"name": "cats", "class_names": ["x", "y"]})
    assert conflict.status_code == 409
    assert api.get("/v1/models/nope").status_code == 404
