"""A few hundred bytes of ONNX cannot make the server allocate gigabytes (issue 27, item 3): a constant
bomb is refused at upload by shape inference, or, where inference cannot see it, by building and
running the session first in a child process with a capped address space; the same check runs
before the gateway or a rollout opens a session for a file registered before the bounds."""

from __future__ import annotations

import os

import onnx
import pytest

from shiftwatch.collector import onnx_limits, registry
from shiftwatch.errors import Invalid
from shiftwatch.rollout.loading import load_verified
from tests.support.hostile import peak_rss_bytes
from tests.support.onnx_bombs import constant_bomb
from tests.support.rollout import build_classifier


def reset_peak() -> int:
    with open(f"/proc/{os.getpid()}/clear_refs", "w") as refs:
        refs.write("5")
    return peak_rss_bytes(os.getpid())


def upload(api, path):
    return api.post("/v1/artifacts", content=path.read_bytes(), headers={"content-type": "application/octet-stream"})


def test_a_visible_constant_bomb_is_refused_at_upload_naming_the_node(api, settings, tmp_path) -> None:
    bomb = tmp_path / "bomb.onnx"
    constant_bomb(bomb, 8192)
    assert bomb.stat().st_size < 500
    response = upload(api, bomb)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "ConstantOfShape" in detail and "8192x8192" in detail and "67,108,864" in detail
    assert not list((settings.data_dir / "artifacts").glob("*.onnx"))


@pytest.mark.parametrize("n", [8192, 65536])
def test_a_hidden_constant_bomb_is_refused_at_upload_without_the_server_growing(api, settings, tmp_path, n) -> None:
    bomb = tmp_path / "hidden.onnx"
    constant_bomb(bomb, n, hide_shape=True)
    onnx_limits.check_static_sizes(onnx.load(str(bomb)))  # inference cannot see it
    before = reset_peak()
    response = upload(api, bomb)
    grown = peak_rss_bytes(os.getpid()) - before
    assert response.status_code == 422, response.text
    assert "building its ONNX Runtime session failed within" in response.json()["detail"]
    assert grown < 64 * 2**20, f"the server grew {grown / 2**20:.0f} MiB"
    assert not list((settings.data_dir / "artifacts").glob("*.onnx"))


def test_a_bomb_registered_before_the_bounds_is_refused_when_loaded(db, settings, tmp_path) -> None:
    bomb = settings.data_dir / "models" / "old.onnx"
    digest = constant_bomb(bomb, 8192, hide_shape=True)  # built in this process, it peaked ~520 MiB over idle
    before = reset_peak()
    with pytest.raises(Invalid, match="building its ONNX Runtime session failed"):
        load_verified(bomb, digest)  # what the gateway and POST /v1/rollouts call
    assert peak_rss_bytes(os.getpid()) - before < 64 * 2**20


def test_an_ordinary_model_passes_both_checks_and_is_probed_once(settings, tmp_path) -> None:
    path = tmp_path / "ok.onnx"
    digest = build_classifier(path, seed=5)
    peak = onnx_limits.probe_session(path)
    assert 0 < peak < onnx_limits.session_limit(path)
    assert load_verified(path, digest).input_shape[1:] == [1, 32, 32]
    assert digest in onnx_limits._probed


def test_registration_over_http_runs_the_bounds_too(api, db, settings) -> None:
    api.post("/v1/models", json={"name": "m", "class_names": ["a", "b"]})
    constant_bomb(settings.data_dir / "artifacts" / "bomb.onnx", 8192)
    response = api.post("/v1/models/m/versions", json={"version": "v1", "embedding_dim": 4, "artifact_path": "artifacts/bomb.onnx"})
    assert response.status_code == 422 and "ConstantOfShape" in response.json()["detail"]
    with db.session() as session:
        assert registry.list_versions(session, "m") == []
