"""The SDK alone runs the "monitor my own model" loop against a real uvicorn with tokens required:
register a model and a version, log, pin a reference (from a time range or from arrays)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from shiftwatch.collector.schemas import PredictionIn
from shiftwatch.db import utcnow
from shiftwatch.settings import Settings
from shiftwatch.tokens import create_token
from shiftwatch_client.client import ApiError, Client


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(
        database_url=db_url, data_dir=tmp_path / "data", scheduler_enabled=False, auth_required=True,
        secret_key="sdk-test-key-Qm7vX2pL9rT4wZ8nB3kH6yC1",
        embedding_keep_rate=1.0,  # a reference from a few dozen rows: every embedding kept, as tests/conftest.py does
    )  # fmt: skip


@pytest.fixture
def client(live_server, db, tmp_path):
    token = create_token(db, "my-script", ["ingest", "read", "operate", "approve"])
    with Client(live_server.url, token=token, spill_dir=tmp_path / "spill", batch_size=50) as sdk:
        yield sdk


def test_register_log_and_pin_a_time_range_reference_with_the_sdk_only(client: Client) -> None:
    model = client.register_model("cats-dogs", ["cat", "dog", "other"], description="pets camera")
    assert model["name"] == "cats-dogs" and model["class_names"] == ["cat", "dog", "other"]
    version = client.register_version("cats-dogs", "2026-11", embedding_dim=16)
    assert (version["version"], version["state"], version["embedding_dim"]) == ("2026-11", "candidate", 16)
    promoted = client.bootstrap_version("cats-dogs", "2026-11", reason="served elsewhere; watch it")
    assert (promoted["id"], promoted["state"]) == (version["id"], "production")
    with pytest.raises(ApiError) as again:  # a model's first production version is named once
        client.bootstrap_version("cats-dogs", "2026-11")
    assert again.value.status == 409

    start = utcnow() - timedelta(seconds=5)
    rng = np.random.default_rng(0)
    for _ in range(120):
        probs = rng.dirichlet(np.ones(3))
        client.log("cats-dogs", "2026-11", int(probs.argmax()), float(probs.max()),
                   embedding=rng.normal(size=16), probabilities=probs)  # fmt: skip
    assert client.flush(timeout=30)
    assert client.stats.stored == 120

    pinned = client.set_reference("cats-dogs", "2026-11", start=start, end=utcnow() + timedelta(seconds=1))
    assert pinned["n"] == 120 and pinned["source"] == "time_range"
    assert (pinned["embedding_dim"], pinned["num_classes"]) == (16, 3)
    assert client.get_reference("cats-dogs", "2026-11")["fingerprint"] == pinned["fingerprint"]
    assert [m["name"] for m in client.list_models()] == ["cats-dogs"]
    assert [v["version"] for v in client.list_versions("cats-dogs")] == ["2026-11"]


def test_registering_again_with_the_same_fields_returns_the_same_rows(client: Client) -> None:
    first = client.register_model("m", ["a", "b"])
    assert client.register_model("m", ["a", "b"])["id"] == first["id"]
    v1 = client.register_version("m", "v1", embedding_dim=4)
    assert client.register_version("m", "v1", embedding_dim=4)["id"] == v1["id"]


def test_an_uploaded_reference_carries_embeddings_and_labels(client: Client) -> None:
    client.register_model("m", ["a", "b", "c", "d"])
    client.register_version("m", "v1", embedding_dim=8)
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=300)
    pinned = client.set_reference(
        "m", "v1", probabilities=probs, embeddings=rng.normal(size=(300, 8)).astype(np.float32),
        labels=rng.integers(0, 4, size=300),
    )  # fmt: skip
    assert (pinned["n"], pinned["source"], pinned["has_labels"]) == (300, "upload", True)
    assert (pinned["embedding_dim"], pinned["num_classes"]) == (8, 4)


def test_refusals_raise_api_error_with_the_servers_reason(client: Client) -> None:
    with pytest.raises(ApiError, match=r"at least two classes|class_names") as caught:
        client.register_model("m", ["only-one"])
    assert caught.value.status == 422
    client.register_model("m", ["a", "b"])
    with pytest.raises(ApiError, match="other class names") as caught:
        client.register_model("m", ["a", "b", "c"])
    assert caught.value.status == 409
    with pytest.raises(ApiError, match="'nope' is not registered") as caught:
        client.register_version("nope", "v1", embedding_dim=4)
    assert caught.value.status == 404
    client.register_version("m", "v1", embedding_dim=4)
    with pytest.raises(ApiError, match="no reference window") as caught:
        client.get_reference("m", "v1")
    assert caught.value.status == 404


def test_a_wrong_token_or_scope_is_refused_by_name(live_server, db, tmp_path) -> None:
    reader = create_token(db, "reader", ["read"])
    with Client(live_server.url, token=reader, spill_dir=tmp_path / "a") as sdk:
        with pytest.raises(ApiError) as caught:
            sdk.register_model("m", ["a", "b"])
        assert caught.value.status == 403 and "operate" in caught.value.detail
    with Client(live_server.url, token="sw_not-a-token", spill_dir=tmp_path / "b") as sdk:
        with pytest.raises(ApiError) as caught:
            sdk.list_models()
        assert caught.value.status == 401


def test_bad_reference_arguments_raise_before_any_request(client: Client) -> None:
    now = utcnow()
    with pytest.raises(ValueError, match="both start and end"):
        client.set_reference("m", "v1", start=now)
    with pytest.raises(ValueError, match="not both"):
        client.set_reference("m", "v1", start=now, end=now, probabilities=[[0.5, 0.5]])
    with pytest.raises(ValueError, match="timezone-aware"):
        client.set_reference("m", "v1", start=now.replace(tzinfo=None), end=now)
    with pytest.raises(ValueError, match="at least probabilities"):
        client.set_reference("m", "v1", embeddings=[[1.0, 2.0]])
    with pytest.raises(ValueError, match="labels must be a non-empty numeric array"):
        client.set_reference("m", "v1", probabilities=[[0.5, 0.5]], labels=["x"])


@pytest.mark.parametrize("schema", ["ModelIn", "ModelOut", "VersionIn", "VersionOut", "IngestOut"])
def test_the_openapi_schema_describes_every_registration_field(app, schema: str) -> None:
    fields = app.openapi()["components"]["schemas"][schema]["properties"]
    undescribed = [name for name, spec in fields.items() if not spec.get("description")]
    allowed = {"ModelOut": {"id", "name", "description", "created_at"},
               "VersionOut": {"id", "version", "embedding_dim", "artifact_path", "artifact_sha256", "input_spec",
                              "created_at"}}  # fmt: skip
    assert set(undescribed) <= allowed.get(schema, set()), f"{schema}: add Field(description=...) for {undescribed}"


@pytest.mark.parametrize(
    "schema",
    ["DetectorConfigIn", "DetectorConfigPatch", "DetectorConfigOut", "ReferenceRangeIn", "ReferenceOut", "AlertOut",
     "DriftRunOut", "CheckOut", "RolloutPlan", "StartRollout", "Decision", "Bootstrap"],
)
def test_the_openapi_schema_describes_every_detector_alert_and_rollout_input_field(app, schema: str) -> None:
    fields = app.openapi()["components"]["schemas"][schema]["properties"]
    assert [name for name, spec in fields.items() if not spec.get("description")] == []


def test_the_openapi_schema_describes_every_ingest_field(app) -> None:
    # POST /v1/predictions reads its body itself (JSON or .npz); its requestBody is declared by hand.
    body = app.openapi()["paths"]["/v1/predictions"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-shiftwatch-npz"}
    batch = body["application/json"]["schema"]
    row = batch["properties"]["predictions"]["items"]
    assert set(row["properties"]) == set(PredictionIn.model_fields) and set(row["required"]) >= {"id", "ts"}
    for fields in (batch["properties"], row["properties"]):
        assert [name for name, spec in fields.items() if not spec.get("description")] == []


def test_the_whole_own_model_loop_reaches_an_alert_through_the_sdk(client: Client, db, settings) -> None:
    # docs/own-model-monitoring.md, steps 3-7: register, pin a validation-set reference, add a
    # detector, log shifted traffic; the scheduler's tick runs here in-process (it is off in tests).
    from shiftwatch.detectors import runs

    client.register_model("parts", [f"class-{i}" for i in range(5)])
    client.register_version("parts", "v1", embedding_dim=32)
    client.bootstrap_version("parts", "v1", reason="first version")
    rng = np.random.default_rng(7)
    client.set_reference("parts", "v1", probabilities=rng.dirichlet(np.ones(5), size=400),
                         embeddings=rng.normal(size=(400, 32)), labels=rng.integers(0, 5, size=400))  # fmt: skip
    config = client.add_detector("parts", "v1", "mmd", window_last_n=300, schedule_seconds=1, confirm_runs=1)
    assert (config["detector"], config["window_last_n"], config["enabled"]) == ("mmd", 300, True)
    for i in range(300):
        probs = rng.dirichlet(np.ones(5))
        client.log("parts", "v1", int(probs.argmax()), float(probs.max()), embedding=rng.normal(0.8, 1.0, size=32),
                   probabilities=probs, input_ref=f"inputs/{i:064x}.png" if i % 2 else None)  # fmt: skip
    assert client.flush(timeout=30) and client.stats.stored == 300
    assert client.list_alerts(model="parts") == []
    runs.run_due_detectors(db, settings, utcnow())
    (alert,) = client.list_alerts(model="parts", version="v1", state="open")
    assert (alert["detector"], alert["config_id"], alert["model"]) == ("mmd", config["id"], "parts")
    # Step 9: the labels the alert asks for, drawn from its window (only rows logged with an input_ref can be shown).
    drawn = client.audit_alert(alert["id"], labels=40, design="uniform")
    assert (drawn["design"], drawn["drawn"], drawn["queued"], drawn["window"]) == ("uniform", 40, 40, 150)
    assert "150 of its predictions were logged without an input_ref" in drawn["note"]
    with pytest.raises(ApiError, match="unknown detector"):
        client.add_detector("parts", "v1", "nope")
