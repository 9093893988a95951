"""Gateway logging loses nothing: one client's bad metadata is its own 422, never other clients' rows (issue 16.3)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from shiftwatch.collector.tables import Prediction
from shiftwatch.rollout.images import DecodedInput
from shiftwatch.rollout.prediction_log import PendingPrediction, PredictionLogWriter
from shiftwatch_client.records import PredictionRecord
from tests.support.rollout import add_version, predict_burst


def stored_request_ids(db) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(Prediction.request_id)))


def test_bad_request_id_among_concurrent_good_ones_is_refused_and_every_answer_is_stored(db, settings, app, live_server):
    add_version(db, settings, "v1", state="production")
    headers = [{"x-request-id": f"good-{i}"} for i in range(50)] + [
        {"x-request-id": "x" * 201},  # one past the column's 200
        {"x-stream-id": "s" * 201},
    ]

    responses = predict_burst(live_server.url, headers)
    answered = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(answered) == 50, [r.text for r in refused]
    assert [(r.status_code, r.json()["field"]) for r in refused] == [(422, "x-request-id"), (422, "x-stream-id")]
    assert "201 characters" in refused[0].json()["detail"]
    assert app.state.gateway.writer.flush()
    assert sorted(stored_request_ids(db)) == sorted(r.json()["request_id"] for r in answered)
    assert app.state.gateway.writer.failed == 0


def test_a_row_the_database_refuses_loses_only_itself(db, settings):
    # Past the gateway's checks (an in-process caller, a future column rule): the batch insert fails,
    # the writer falls back to row by row and stores the 50 others.
    from shiftwatch.collector import registry

    with db.session() as session:
        registry.register_model(session, "digits", [str(i) for i in range(10)])
        registry.register_version(session, "digits", "v1", embedding_dim=4, state="production")
    rng = np.random.default_rng(0)
    image = DecodedInput(rng.random((1, 8, 8)).astype(np.float32), None, "png")

    def pending(request_id: str) -> PendingPrediction:
        record = PredictionRecord("digits", "v1", 3, 0.9, embedding=rng.random(4).astype(np.float32),
                                  request_id=request_id)
        return PendingPrediction(record, image)

    writer = PredictionLogWriter(
        db, settings.data_dir, input_max_bytes=settings.input_max_bytes, ingest_max_rows=settings.max_batch_rows,
        retention_days=settings.retention_days, flush_interval_s=0.5,
    )
    try:
        items = [pending(f"ok-{i}") for i in range(25)] + [pending("y" * 201)] + [pending(f"ok-{i}") for i in range(25, 50)]
        for item in items:
            writer.put(item)
        assert writer.flush()
    finally:
        writer.close()
    assert sorted(stored_request_ids(db)) == sorted(f"ok-{i}" for i in range(50))
    assert (writer.written, writer.failed) == (50, 1)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 50
