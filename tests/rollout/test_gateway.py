"""The serving gateway over real HTTP: batching, logging with embeddings, sha256 refusal, sticky canary routing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select

from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.tables import Prediction
from shiftwatch.rollout import controller
from shiftwatch.rollout.routing import bucket
from shiftwatch.rollout.schemas import RolloutPlan
from tests.support.rollout import add_version, png_image, predict_burst


def stored(db, route: str | None = None) -> list[Prediction]:
    with db.session() as session:
        stmt = select(Prediction)
        if route is not None:
            stmt = stmt.where(Prediction.route == route)
        return list(session.scalars(stmt))


@pytest.mark.parametrize("parallelism", [1, 2])  # 2: each gathered batch runs as two concurrent ORT calls
def test_concurrent_predictions_share_ort_calls_and_are_logged_with_embeddings(db, settings, app, live_server, parallelism):
    settings.gateway_batch_parallelism = parallelism  # read when the version loads, at the first request
    add_version(db, settings, "v1", state="production")

    responses = predict_burst(
        live_server.url, [{"x-request-id": f"req-{i}", "x-stream-id": "cam-1"} for i in range(64)]
    )
    assert all(r.status_code == 200 for r in responses), responses[0].text
    body = responses[0].json()
    assert body["model"] == "digits" and body["version"] == "v1" and body["route"] == "production"
    assert 0 <= body["class"] < 10 and abs(sum(body["probabilities"]) - 1) < 1e-4
    sizes = app.state.gateway.batch_sizes("digits")["digits:v1"]
    assert max(sizes) > 1, sizes
    assert sum(size * calls for size, calls in sizes.items()) == 64

    assert app.state.gateway.writer.flush()
    rows = stored(db)
    assert len(rows) == 64
    assert {r.request_id for r in rows} == {f"req-{i}" for i in range(64)}
    assert all(r.stream_id == "cam-1" and len(r.embedding) == 16 and r.latency_ms is not None for r in rows)
    first = next(r for r in rows if r.request_id == "req-0")
    assert InputStore(settings.data_dir).get(first.input_ref) == png_image(0)


def test_json_array_input_is_served_and_stored_as_png(db, settings, api):
    add_version(db, settings, "v1", state="production")
    image = np.random.default_rng(3).random((32, 32)).round(3).tolist()
    response = api.post(
        "/v1/models/digits/predict", content=json.dumps(image), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert api.app.state.gateway.writer.flush()
    (row,) = stored(db)
    assert row.request_id == response.json()["request_id"] and row.input_ref.endswith(".png")


def test_bad_inputs_are_refused_without_logging(db, settings, api):
    add_version(db, settings, "v1", state="production")
    wrong_shape = api.post("/v1/models/digits/predict", content="[[1, 2], [3, 4]]",
                           headers={"content-type": "application/json"})
    not_image = api.post("/v1/models/digits/predict", content=b"nope", headers={"content-type": "image/png"})
    unknown = api.post("/v1/models/nope/predict", content=png_image(0), headers={"content-type": "image/png"})
    assert (wrong_shape.status_code, not_image.status_code, unknown.status_code) == (422, 422, 404)
    assert api.app.state.gateway.writer.flush()
    assert stored(db) == []


def test_artifact_whose_sha256_differs_from_registry_is_not_served(db, settings, api):
    add_version(db, settings, "v1", state="production", sha256="0" * 64)
    response = api.post("/v1/models/digits/predict", content=png_image(0), headers={"content-type": "image/png"})
    assert response.status_code == 503
    assert "sha256" in response.json()["detail"]


def test_canary_routing_is_sticky_per_client_key(db, settings, api):
    add_version(db, settings, "v1", state="production")
    add_version(db, settings, "v2", noise=0.1)
    plan = RolloutPlan(canary_steps=[0.5, 1.0])
    with db.session() as session:
        rollout = controller.start_rollout(session, settings.data_dir, "digits", "v2", plan, actor="test")
        rollout_id = rollout.id
        rollout.step_started_at = rollout.stage_started_at  # keep the shadow->canary move trivial
        controller.transition(session, rollout, "canary", actor="test", action="start_canary", reason="test")
    api.app.state.gateway.refresh("digits")
    routes: dict[str, set[str]] = {}
    for i in range(40):
        key = f"client-{i % 10}"
        response = api.post("/v1/models/digits/predict", content=png_image(i),
                            headers={"content-type": "image/png", "x-client-key": key})
        routes.setdefault(key, set()).add(response.json()["route"])
    assert all(len(seen) == 1 for seen in routes.values()), routes
    expected = {key: "canary" if bucket(rollout_id, key) < 0.5 else "production" for key in routes}
    assert {key: seen.pop() for key, seen in routes.items()} == expected
    assert api.app.state.gateway.writer.flush()
    canary_rows = stored(db, "canary")
    assert canary_rows and all(r.model_version_id != stored(db, "production")[0].model_version_id for r in canary_rows)


@pytest.mark.parametrize("share", [0.05, 0.25, 0.5])
def test_sticky_buckets_give_the_configured_share_and_grow_monotonically(share):
    keys = [f"k{i}" for i in range(20_000)]
    inside = {k for k in keys if bucket(7, k) < share}
    assert abs(len(inside) / len(keys) - share) < 0.015
    assert inside <= {k for k in keys if bucket(7, k) < share + 0.2}
