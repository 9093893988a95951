"""GET /v1/inputs/{name} serves only files the input store handed out: no path from a client reaches the disk."""

from __future__ import annotations

import pytest

from shiftwatch.collector.inputs import InputStore

# Each tries to read a file outside data_dir/inputs (the test plants one at data_dir/secret.txt).
TRAVERSALS = [
    "../secret.txt",
    "..%2Fsecret.txt",
    "%2e%2e%2fsecret.txt",
    "%2e%2e/secret.txt",
    "..%5csecret.txt",
    "....//secret.txt",
    "%252e%252e%252fsecret.txt",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "..%00.png",
    "secret.txt",
    "0" * 64 + ".png/../../secret.txt",
    "0" * 64 + ".PNG",
    "0" * 63 + ".png",
    "0" * 64 + ".exe",
    "0" * 64 + ".png%00.txt",
]


@pytest.fixture
def planted(settings):
    secret = settings.data_dir / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("TOP SECRET")
    ref = InputStore(settings.data_dir).put(b"\x89PNG fake image bytes", "png")
    return ref


def test_stored_input_is_served(api, planted):
    response = api.get(f"/v1/{planted}")
    assert response.status_code == 200
    assert response.content == b"\x89PNG fake image bytes"
    assert response.headers["content-type"] == "image/png"


@pytest.mark.parametrize("name", TRAVERSALS)
def test_traversal_attempts_never_serve_a_file(api, planted, name):
    response = api.get(f"/v1/inputs/{name}")
    assert response.status_code in (404, 422), response.status_code
    assert b"TOP SECRET" not in response.content and b"root:" not in response.content


@pytest.mark.parametrize("ref", ["inputs/../secret.txt", "inputs/" + "a" * 64 + ".png/..", "/etc/passwd", "inputs/x.png"])
def test_store_refuses_refs_it_did_not_hand_out(settings, ref):
    from shiftwatch.errors import Invalid

    with pytest.raises(Invalid):
        InputStore(settings.data_dir).path(ref)
