"""Property test of ingest validation: random batches, valid ones stored exactly once, invalid ones
refused whole with a 4xx that names the bad row and field, never a 5xx, never half-written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.pg_processes import stored_count

# Each breaks one field of one row; the value says which field the refusal must name.
MUTATIONS = {
    "confidence_high": ("confidence", lambda row: row.update(confidence=1.5)),
    "confidence_negative": ("confidence", lambda row: row.update(confidence=-0.1)),
    "class_too_big": ("predicted_class", lambda row: row.update(predicted_class=10)),
    "class_negative": ("predicted_class", lambda row: row.update(predicted_class=-1)),
    "embedding_short": ("embedding", lambda row: row.update(embedding=row["embedding"][:-1])),
    "probabilities_long": ("probabilities", lambda row: row.update(probabilities=row["probabilities"] + [0.0])),
    "route_unknown": ("route", lambda row: row.update(route="staging")),
    "ts_too_old": ("ts", lambda row: row.update(ts=(datetime.now(UTC) - timedelta(days=400)).isoformat())),
    "ts_future": ("ts", lambda row: row.update(ts=(datetime.now(UTC) + timedelta(days=3)).isoformat())),
    "ts_naive": ("ts", lambda row: row.update(ts=datetime.now().replace(tzinfo=None).isoformat())),
    "latency_negative": ("latency_ms", lambda row: row.update(latency_ms=-3.0)),
    "request_id_long": ("request_id", lambda row: row.update(request_id="r" * 201)),
    "request_id_nul": ("request_id", lambda row: row.update(request_id="a\x00b")),
    "missing_confidence": ("confidence", lambda row: row.pop("confidence")),
    "id_not_uuid": ("id", lambda row: row.update(id="12345")),
    "unknown_field": ("colour", lambda row: row.update(colour="red")),
    "unknown_version": ("version", lambda row: row.update(version="v999")),
}


def make_row(rng: np.random.Generator) -> dict:
    probs = rng.dirichlet(np.ones(10))
    return {
        # A fresh id each time: hypothesis replays a seed, and the same id with a new ts is a 409 (the id is the key).
        "id": str(uuid.uuid4()),
        "model": "digits",
        "version": "v1",
        "ts": (datetime.now(UTC) - timedelta(seconds=float(rng.uniform(0, 86_400)))).isoformat(),
        "route": str(rng.choice(["production", "canary", "shadow"])),
        "predicted_class": int(probs.argmax()),
        "confidence": float(probs.max()),
        "probabilities": probs.tolist(),
        "embedding": rng.normal(size=64).tolist(),
        "latency_ms": float(rng.uniform(0, 50)),
        "request_id": f"req-{rng.integers(1 << 30)}",
    }


@st.composite
def batches(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = [make_row(rng) for _ in range(draw(st.integers(1, 12)))]
    for row in rows:  # optional fields come and go
        for optional in ("probabilities", "embedding", "latency_ms", "request_id"):
            if draw(st.booleans()) and draw(st.booleans()):
                row.pop(optional)
    mutation = draw(st.one_of(st.none(), st.sampled_from(sorted(MUTATIONS))))
    bad_row = None
    if mutation is not None:
        bad_row = draw(st.integers(0, len(rows) - 1))
        field, mutate = MUTATIONS[mutation]
        if field in ("embedding", "probabilities") and field not in rows[bad_row]:
            rows[bad_row][field] = make_row(rng)[field]
        mutate(rows[bad_row])
    return rows, mutation, bad_row


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=batches())
def test_ingest_stores_valid_batches_once_and_refuses_invalid_ones_whole(api, db, digits_model, case):
    rows, mutation, bad_row = case
    before = stored_count(db)
    response = api.post("/v1/predictions", json={"predictions": rows})
    assert response.status_code < 500, response.text
    if mutation is None:
        assert response.status_code == 200, response.text
        assert response.json() == {"received": len(rows), "stored": len(rows), "duplicates": 0}
        again = api.post("/v1/predictions", json={"predictions": rows})
        assert again.json() == {"received": len(rows), "stored": 0, "duplicates": len(rows)}
        assert stored_count(db) == before + len(rows)
        return
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    named = body.get("field") or body["detail"].split(":", 1)[0]
    field = MUTATIONS[mutation][0]
    assert named == f"predictions[{bad_row}].{field}" or named == f"body.predictions.{bad_row}.{field}", (
        mutation,
        body,
    )
    assert stored_count(db) == before, "an invalid batch must not be half-written"
