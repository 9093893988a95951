"""``input_spec`` is checked at registration and before the gateway serves it (issue 27, item 4): a spec
past ``gateway_max_image_pixels`` or unlike the ONNX input's fixed dims is refused naming
``input_spec.shape``; one registered before the check is not served."""

from __future__ import annotations

import pytest

from shiftwatch.collector import registry
from tests.support.rollout import add_version, build_classifier, png_image


def register(api, settings, shape: list[int] | None, *, artifact: bool = True):
    api.post("/v1/models", json={"name": "digits", "class_names": [str(i) for i in range(10)]})
    body: dict = {"version": "v2", "embedding_dim": 16}
    if artifact:
        build_classifier(settings.data_dir / "artifacts" / "v2.onnx")  # input [N, 1, 32, 32]
        body["artifact_path"] = "artifacts/v2.onnx"
    if shape is not None:
        body["input_spec"] = {"shape": shape}
    return api.post("/v1/models/digits/versions", json=body)


@pytest.mark.parametrize(
    ("shape", "artifact", "says"),
    [
        ([1, 6000, 6000], True, "36,000,000 pixels, over the gateway's limit of 16,777,216"),
        ([1, 6000, 6000], False, "36,000,000 pixels"),
        ([1, 28, 28], True, "height 28 != 32"),
        ([3, 32, 32], True, "channels 3 != 1"),
        ([2, 32, 32], False, "1 or 3 channels"),
    ],
)
def test_a_bad_input_spec_is_refused_at_registration(api, db, settings, shape, artifact, says) -> None:
    response = register(api, settings, shape, artifact=artifact)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "input_spec.shape" and says in response.json()["detail"]
    with db.session() as session:
        assert [v.version for v in registry.list_versions(session, "digits")] == []


def test_a_spec_that_fits_the_model_is_registered(api, db, settings) -> None:
    assert register(api, settings, [1, 32, 32]).status_code == 201
    assert register(api, settings, None).status_code == 201  # the default [1, 32, 32] fits too


def test_a_spec_registered_before_the_check_is_not_served(db, settings, api) -> None:
    add_version(db, settings, "v1", state="production")
    with db.session() as session:
        registry.get_version(session, "digits", "v1").input_spec = {"shape": [1, 6000, 6000]}
    response = api.post("/v1/models/digits/predict", content=png_image(1), headers={"content-type": "image/png"})
    assert response.status_code == 503
    assert "input_spec.shape" in response.json()["detail"] and "pixels" in response.json()["detail"]
