"""A client of another API version is refused by name, on both sides: the server's 400 on every
request and ``Client.check_server()`` name both versions and the pip pin that fixes it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from shiftwatch import __version__ as server_version
from shiftwatch_client import IncompatibleServer
from shiftwatch_client import __version__ as client_version
from shiftwatch_client.client import Client
from shiftwatch_client.spill import SpillDir
from shiftwatch_client.version import VERSION_HEADER, mismatch


@pytest.mark.parametrize(("client", "server", "compatible"), [
    ("1.2.0", "1.9.3", True), ("0.1.0", "0.1.7", True), ("2.0.0", "1.4.0", False), ("0.2.0", "0.1.0", False),
    ("1.0.0", "0.9.0", False), ("banana", "0.1.0", False),
])  # fmt: skip
def test_versions_talk_when_their_api_generation_matches(client: str, server: str, compatible: bool) -> None:
    why = mismatch(client, server)
    assert (why is None) == compatible
    if why is not None:
        assert client in why


def test_the_server_refuses_a_client_of_another_major_naming_both_versions(api) -> None:
    refused = api.post("/v1/predictions", headers={VERSION_HEADER: "9.0.0", "Content-Type": "application/json"},
                       content=b"{}")  # fmt: skip
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert "9.0.0" in detail and server_version in detail and "pip install 'shiftwatch-client" in detail
    assert api.get("/v1/models", headers={VERSION_HEADER: server_version}).status_code == 200
    assert api.get("/v1/models").status_code == 200  # curl and browsers send no version: not checked
    assert api.get("/health", headers={VERSION_HEADER: "9.0.0"}).status_code == 200  # where clients read ours


def test_a_client_of_another_version_fails_fast_and_keeps_its_rows(live_server, db, digits_model, tmp_path,
                                                                   monkeypatch) -> None:
    monkeypatch.setattr("shiftwatch_client.transport.__version__", "0.2.0")
    monkeypatch.setattr("shiftwatch_client.sdk_calls.__version__", "0.2.0")
    with Client(live_server.url, spill_dir=tmp_path / "spill") as client:
        with pytest.raises(IncompatibleServer, match=f"0.2.0 cannot talk to the shiftwatch server {server_version}"):
            client.check_server()
        for i in range(10):
            client.log("digits", "v1", i, 0.9, embedding=np.zeros(64, dtype=np.float32))
        assert client.flush() is False
        assert client.stats.rejected == 10
    (kept,) = SpillDir(tmp_path / "spill").rejected()  # replay-rejected sends them once the client is upgraded
    assert "0.2.0" in kept.reason and server_version in kept.reason


def test_the_server_pins_the_client_of_its_own_version() -> None:
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert project["version"] == server_version == client_version  # the two ship together, one version
    assert f"shiftwatch-client=={client_version}" in project["dependencies"]
