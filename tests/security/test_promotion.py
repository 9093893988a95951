"""Issue 16.6: registering over the API creates a candidate; production is reached through a rollout or an audited bootstrap."""

from __future__ import annotations

import secrets
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from shiftwatch.app import create_app
from shiftwatch.rollout.tables import AuditLog, Rollout
from shiftwatch.settings import Settings
from shiftwatch.tokens import create_token
from tests.support.rollout import CLASSES, EMBEDDING_DIM, build_classifier, png_image

MODEL = {"name": "digits", "class_names": [str(i) for i in range(CLASSES)]}
SPEC = {"shape": [1, 32, 32], "dtype": "float32", "scale": "0..1"}


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data", scheduler_enabled=False, auth_required=True,
                    secret_key=secrets.token_urlsafe(48), gateway_refresh_seconds=0.1,
                    allowed_hosts=["testserver"])  # the TestClient's Host


@pytest.fixture
def tokens(db) -> dict[str, dict[str, str]]:
    names = {"operator": ["operate", "read", "ingest"], "approver": ["approve", "read"]}
    return {name: {"authorization": f"Bearer {create_token(db, name, scopes)}"} for name, scopes in names.items()}


def version_body(settings: Settings, version: str, seed: int = 0, **extra) -> dict:
    build_classifier(settings.data_dir / "artifacts" / f"{version}.onnx", seed=seed)
    return {"version": version, "embedding_dim": EMBEDDING_DIM, "artifact_path": f"artifacts/{version}.onnx",
            "input_spec": SPEC, **extra}


def predict(api: TestClient, headers: dict[str, str]):
    return api.post("/v1/models/digits/predict", content=png_image(1),
                    headers={**headers, "content-type": "image/png", "x-client-key": "c1"})


def audit_rows(db) -> list[tuple[str, str, str | None]]:
    with db.session() as session:
        return [(a.action, a.actor, a.to_state) for a in session.scalars(select(AuditLog).order_by(AuditLog.id))]


def test_an_operate_token_cannot_register_a_version_into_production(db, settings, tokens):
    # Before: 201, and the gateway served the version within 3 s with no rollout row and no audit entry.
    with TestClient(create_app(settings, db)) as api:
        operator = tokens["operator"]
        assert api.post("/v1/models", json=MODEL, headers=operator).status_code == 201
        for state in ("production", "canary", "shadow", "retired"):
            refused = api.post("/v1/models/digits/versions", json=version_body(settings, "v1", state=state),
                               headers=operator)
            assert refused.status_code == 422, refused.text
            assert refused.json()["field"].endswith("state") and "rollout" in refused.json()["detail"], refused.text
        assert api.get("/v1/models/digits/versions", headers=operator).json() == []
        created = api.post("/v1/models/digits/versions", json=version_body(settings, "v1"), headers=operator)
        assert created.status_code == 201 and created.json()["state"] == "candidate", created.text
        time.sleep(0.5)  # several gateway refreshes: a candidate is never served
        assert predict(api, operator).status_code in (404, 503)  # no production version to serve
        assert api.post("/v1/models/digits/versions/v1/bootstrap", json={}, headers=operator).status_code == 403
        with db.session() as session:
            assert session.scalars(select(Rollout)).all() == []
        assert audit_rows(db) == []


def test_bootstrap_makes_the_first_version_production_once_with_an_audit_row(db, settings, tokens):
    with TestClient(create_app(settings, db)) as api:
        operator, approver = tokens["operator"], tokens["approver"]
        api.post("/v1/models", json=MODEL, headers=operator)
        for version, seed in (("v1", 0), ("v2", 1)):
            created = api.post("/v1/models/digits/versions", json=version_body(settings, version, seed), headers=operator)
            assert created.status_code == 201, created.text
        first = api.post("/v1/models/digits/versions/v1/bootstrap", json={"reason": "first model"}, headers=approver)
        assert first.status_code == 200 and first.json()["state"] == "production", first.text
        assert audit_rows(db) == [("bootstrap", "approver", "production")]
        deadline = time.monotonic() + 10
        while (served := predict(api, operator)).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served.status_code == 200 and served.json()["version"] == "v1", served.text
        second = api.post("/v1/models/digits/versions/v2/bootstrap", json={}, headers=approver)
        assert second.status_code == 409 and "rollout" in second.json()["detail"], second.text
        again = api.post("/v1/models/digits/versions/v1/bootstrap", json={}, headers=approver)
        assert again.status_code == 409, again.text
        states = {v["version"]: v["state"] for v in api.get("/v1/models/digits/versions", headers=operator).json()}
        assert states == {"v1": "production", "v2": "candidate"}
        assert audit_rows(db) == [("bootstrap", "approver", "production")]  # refusals change nothing
        # The way on for v2 is the rollout controller: it starts in shadow behind v1.
        started = api.post("/v1/rollouts", json={"model": "digits", "version": "v2"}, headers=operator)
        assert started.status_code in (200, 201) and started.json()["state"] == "shadow", started.text
