"""Uploaded model artifacts: refused unless small enough, matching their sha256 and a valid, self-contained ONNX."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from shiftwatch.artifacts import verify_onnx_artifact
from shiftwatch.errors import Invalid, TooLarge


def tiny_model(path: Path) -> str:
    """A 4->2 linear layer, valid ONNX; returns its sha256."""
    weight = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=[weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_valid_artifact_passes_and_reports_its_graph(tmp_path):
    path = tmp_path / "m.onnx"
    digest = tiny_model(path)
    check = verify_onnx_artifact(path, digest, max_bytes=1 << 20)
    assert (check.sha256, check.opset, check.inputs, check.outputs) == (digest, 17, ("x",), ("y",))
    assert check.size_bytes == path.stat().st_size


def test_artifact_over_the_size_limit_is_refused_before_hashing(tmp_path):
    path = tmp_path / "m.onnx"
    digest = tiny_model(path)
    with pytest.raises(TooLarge):
        verify_onnx_artifact(path, digest, max_bytes=path.stat().st_size - 1)


def test_wrong_sha256_is_refused(tmp_path):
    path = tmp_path / "m.onnx"
    tiny_model(path)
    with pytest.raises(Invalid) as error:
        verify_onnx_artifact(path, "0" * 64)
    assert error.value.field == "artifact_sha256"
    with pytest.raises(Invalid):
        verify_onnx_artifact(path, "not-hex")


def test_flipped_byte_is_caught_by_the_hash(tmp_path):
    path = tmp_path / "m.onnx"
    digest = tiny_model(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(Invalid):
        verify_onnx_artifact(path, digest)


@pytest.mark.parametrize(
    "content",
    [b"\x80\x04\x95 pickle payload cos\nsystem\n(S'echo pwned'\ntR.", b"not a model at all", b"\x00" * 64],
)
def test_non_onnx_bytes_are_refused(tmp_path, content):
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    with pytest.raises(Invalid) as error:
        verify_onnx_artifact(path, hashlib.sha256(content).hexdigest())
    assert error.value.field == "artifact"


def test_graph_that_fails_the_checker_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "missing"], ["y"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(Invalid, match="ONNX checker"):
        verify_onnx_artifact(path, None)


def test_external_data_files_are_refused(tmp_path):
    # An external-data reference is a path the server would open; artifacts must carry their weights.
    path = tmp_path / "m.onnx"
    tiny_model(path)
    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    with pytest.raises(Invalid, match="external data"):
        verify_onnx_artifact(path, None)


def test_symlink_and_missing_file_are_refused(tmp_path):
    real = tmp_path / "m.onnx"
    tiny_model(real)
    link = tmp_path / "link.onnx"
    os.symlink(real, link)
    with pytest.raises(Invalid, match="regular file"):
        verify_onnx_artifact(link, None)
    with pytest.raises(Invalid, match="does not exist"):
        verify_onnx_artifact(tmp_path / "nope.onnx", None)
    for bad in ("a\x00b.onnx", "x" * 5000):
        with pytest.raises(Invalid, match="cannot be read"):
            verify_onnx_artifact(tmp_path / bad, None)


def test_registering_a_version_over_http_verifies_its_artifact(api, db, settings):
    api.post("/v1/models", json={"name": "m", "class_names": ["a", "b"]})
    (settings.data_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    digest = tiny_model(settings.data_dir / "artifacts" / "m.onnx")
    version = {"version": "v1", "embedding_dim": 4, "artifact_path": "artifacts/m.onnx"}
    created = api.post("/v1/models/m/versions", json=version)
    assert created.status_code == 201, created.text
    assert created.json()["artifact_sha256"] == digest  # recorded, so the gateway can verify before serving it
    for path, sha, field in [("artifacts/m.onnx", "f" * 64, "artifact_sha256"),
                             ("artifacts/missing.onnx", None, "artifact")]:  # fmt: skip
        refused = api.post("/v1/models/m/versions", json={**version, "version": "v2", "artifact_path": path, "artifact_sha256": sha})
        assert refused.status_code == 422 and refused.json()["field"] == field, refused.text
    assert [v["version"] for v in api.get("/v1/models/m/versions").json()] == ["v1"]


def test_paths_outside_the_artifact_store_get_one_answer_whether_they_exist_or_not(api, settings, tmp_path):
    # Issue 16.9. Before: /etc/passwd -> "not an ONNX model", a missing file -> "does not exist".
    api.post("/v1/models", json={"name": "m", "class_names": ["a", "b"]})
    store = settings.data_dir / "artifacts"
    store.mkdir(parents=True, exist_ok=True)
    tiny_model(settings.data_dir / "beside.onnx")  # a valid model, but not in the store
    tiny_model(tmp_path / "elsewhere.onnx")
    os.symlink(tmp_path / "elsewhere.onnx", store / "link.onnx")
    outside = ["/etc/passwd", "/no/such/file.onnx", "/etc", "beside.onnx", "missing.onnx", "../../../../etc/passwd",
               "artifacts/../beside.onnx", "artifacts/link.onnx", str(tmp_path / "elsewhere.onnx"), "artifacts",
               "artifacts/\x00.onnx"]
    answers = set()
    for path in outside:
        refused = api.post("/v1/models/m/versions", json={"version": "v1", "embedding_dim": 4, "artifact_path": path})
        assert refused.status_code == 422 and refused.json()["field"] == "artifact_path", (path, refused.text)
        answers.add(refused.json()["detail"])
    assert len(answers) == 1, answers
    assert "exist" not in answers.pop()
    assert api.get("/v1/models/m/versions").json() == []


def test_an_uploaded_artifact_is_verified_stored_by_its_hash_and_registrable(api, settings, tmp_path):
    api.post("/v1/models", json={"name": "m", "class_names": ["a", "b"]})
    digest = tiny_model(tmp_path / "m.onnx")
    uploaded = api.post("/v1/artifacts", content=(tmp_path / "m.onnx").read_bytes(),
                        headers={"x-artifact-sha256": digest, "content-type": "application/octet-stream"})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["artifact_path"] == f"artifacts/{digest}.onnx" and uploaded.json()["inputs"] == ["x"]
    assert (settings.data_dir / "artifacts" / f"{digest}.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()
    version = {"version": "v1", "embedding_dim": 4, "artifact_path": uploaded.json()["artifact_path"]}
    created = api.post("/v1/models/m/versions", json=version)
    assert created.status_code == 201 and created.json()["artifact_sha256"] == digest, created.text


@pytest.mark.parametrize(
    ("content", "headers", "status", "field"),
    [
        (b"not a model at all", {}, 422, "artifact"),
        (None, {"x-artifact-sha256": "0" * 64}, 422, "artifact_sha256"),
        (b"\x08" * 5000, {}, 413, None),  # over artifact_max_bytes below
    ],
)
def test_a_refused_upload_leaves_nothing_behind(db, settings, tmp_path, content, headers, status, field):
    from fastapi.testclient import TestClient

    from shiftwatch.app import create_app

    tiny_model(tmp_path / "m.onnx")
    body = content if content is not None else (tmp_path / "m.onnx").read_bytes()
    with TestClient(create_app(settings.model_copy(update={"artifact_max_bytes": 4096}), db)) as api:
        refused = api.post("/v1/artifacts", content=body, headers={**headers, "content-type": "application/octet-stream"})
    assert refused.status_code == status, refused.text
    if field:
        assert refused.json()["field"] == field
    left = [p for p in (settings.data_dir / "artifacts").rglob("*") if p.is_file()]
    assert left == []
