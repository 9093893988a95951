"""The labeling queue as a list for scripts (``GET /v1/labeling/tasks``): what a person labels without Label
Studio, with the ids ``labeling import`` takes (request ids too); on both backends."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import numpy as np
from typer.testing import CliRunner

from shiftwatch import cli as root_cli
from shiftwatch_client.records import PredictionRecord
from tests.support.collector import store_predictions
from tests.support.labeling import fake_ref, probs_with_margin


def log_uncertain(db, settings, margins: list[float]) -> list[str]:
    """One production prediction per margin, with request ids req-0, req-1, ...; returns the request ids."""
    ts = datetime.now(UTC) - timedelta(minutes=5)
    rng = np.random.default_rng(0)
    records = [
        PredictionRecord(model="digits", version="v1", predicted_class=3, confidence=float(probs_with_margin(3, m).max()),
                         probabilities=probs_with_margin(3, m), embedding=rng.normal(size=64).astype(np.float32),
                         request_id=f"req-{i}", input_ref=fake_ref(i), id=uuid.uuid4(), ts=ts + timedelta(milliseconds=i))
        for i, m in enumerate(margins)
    ]  # fmt: skip
    store_predictions(db, settings, records)
    return [r.request_id or "" for r in records]


def test_queued_samples_are_listed_with_their_request_ids_reasons_and_image_links(db, settings, api, digits_model) -> None:
    request_ids = log_uncertain(db, settings, [0.02, 0.05, 0.1, 0.9, 0.95])
    queued = api.post("/v1/labeling/select", params={"model": "digits", "hours": 1}, json={}).json()["queued"]
    assert queued >= 3

    listed = api.get("/v1/labeling/tasks", params={"model": "digits"}).json()
    assert len(listed) == queued
    assert {task["request_id"] for task in listed} <= set(request_ids)
    assert all(task["state"] == "pending" and task["route"] == "production" for task in listed)
    assert [t["priority"] for t in listed] == sorted((t["priority"] for t in listed), reverse=True)
    first = listed[0]
    assert first["predicted_label"] == "3" and first["version"] == "v1"
    assert first["input_ref"] == fake_ref(request_ids.index(first["request_id"]))
    # The image link works without a token: it is the signed link Label Studio's annotators get.
    link = urlsplit(first["image_url"])
    assert link.path == "/v1/labeling/inputs/" + first["input_ref"].removeprefix("inputs/") and "signature=" in link.query
    assert api.get("/v1/labeling/tasks", params={"model": "digits", "state": "labeled"}).json() == []
    assert len(api.get("/v1/labeling/tasks", params={"model": "digits", "limit": 1}).json()) == 1


def test_a_bad_state_or_an_unknown_model_is_refused_with_its_reason(db, settings, api, digits_model) -> None:
    bad = api.get("/v1/labeling/tasks", params={"model": "digits", "state": "done"})
    assert bad.status_code == 422 and "pending" in bad.text
    assert api.get("/v1/labeling/tasks", params={"model": "nope"}).status_code == 404


def test_the_list_names_the_same_open_tasks_as_labeling_export(db, settings, api, digits_model) -> None:
    log_uncertain(db, settings, [0.02, 0.05, 0.1])
    api.post("/v1/labeling/select", params={"model": "digits", "hours": 1}, json={})
    env = {"SHIFTWATCH_DATABASE_URL": settings.database_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(root_cli.app, ["labeling", "export", "--model", "digits"], env=env)
    assert result.exit_code == 0, result.output
    exported = {row["prediction_id"] for row in csv.DictReader(io.StringIO(result.output))}
    listed = {t["prediction_id"] for t in api.get("/v1/labeling/tasks", params={"model": "digits"}).json()}
    assert exported == listed and len(listed) == 3
