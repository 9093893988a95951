"""The signed image links as Label Studio's pages load them: CORS for its origins only, and the stretched view.

Over real HTTP through the ASGI app with auth on: the link's signature is the only credential.
No database rows are involved (the input store is files), so one backend is enough.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

from shiftwatch.collector.inputs import InputStore
from shiftwatch.labeling.input_links import InputLinks
from shiftwatch.settings import Settings
from tests.support.labeling import low_contrast_png


@pytest.fixture
def backend() -> str:
    """One backend: no database rows are involved."""
    return "sqlite"

STUDIO = "http://127.0.0.1:18080"
EXTRA = "https://label.example.com"
SECRET = "Jq3vT9xKp2LmW8rZc5YhN1bF6dG4sA7eU0iO"


@pytest.fixture
def media(settings: Settings, db) -> Iterator[tuple[TestClient, Settings, str]]:
    from shiftwatch.app import create_app

    settings = settings.model_copy(update={
        "auth_required": True, "secret_key": SECRET, "label_studio_url": STUDIO + "/projects", "label_studio_origins": [EXTRA],
    })
    ref = InputStore(settings.data_dir).put(low_contrast_png(), "png")
    link = InputLinks.of(settings).link(ref).removeprefix(settings.public_url)
    with TestClient(create_app(settings, db)) as client:
        yield client, settings, link


@pytest.mark.parametrize("origin", [STUDIO, EXTRA])
def test_label_studio_origins_may_read_the_image_and_nobody_else(media, origin) -> None:
    client, _, link = media
    allowed = client.get(link, headers={"Origin": origin})
    assert allowed.status_code == 200 and allowed.content.startswith(b"\x89PNG")
    assert allowed.headers["access-control-allow-origin"] == origin
    assert "Origin" in allowed.headers["vary"]
    assert "access-control-allow-credentials" not in allowed.headers  # the link is the credential, never cookies
    for other in ("https://evil.example", "http://127.0.0.1:18081", "null"):
        refused = client.get(link, headers={"Origin": other})
        assert refused.status_code == 200  # the link itself still works (an <img> without CORS) ...
        assert "access-control-allow-origin" not in refused.headers  # ... but no other page's script may read it
    assert "access-control-allow-origin" not in client.get(link).headers


def test_cors_never_stands_in_for_the_signature(media) -> None:
    client, _, link = media
    forged = client.get(link[:-4] + "0000", headers={"Origin": STUDIO})
    assert forged.status_code == 403 and b"PNG" not in forged.content
    unsigned = client.get(link.split("?")[0], headers={"Origin": STUDIO})
    assert unsigned.status_code == 401
    # CORS is for the signed input route only: the rest of the API answers no cross-origin reader.
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": STUDIO}).headers


def test_preflight_is_answered_for_label_studio_and_refused_for_others(media) -> None:
    client, _, link = media
    asked = {"Origin": STUDIO, "Access-Control-Request-Method": "GET"}
    approved = client.options(link, headers=asked)
    assert approved.status_code == 204
    assert approved.headers["access-control-allow-origin"] == STUDIO
    assert "GET" in approved.headers["access-control-allow-methods"]
    refused = client.options(link, headers={**asked, "Origin": "https://evil.example"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert "SHIFTWATCH_LABEL_STUDIO_URL" in refused.json()["detail"]
    wrong_method = client.options(link, headers={**asked, "Access-Control-Request-Method": "DELETE"})
    assert wrong_method.status_code == 403 and wrong_method.json()["field"] == "access-control-request-method"


def test_stretched_view_spans_the_full_range_and_keeps_the_size(media) -> None:
    client, _, link = media
    original = np.asarray(Image.open(io.BytesIO(client.get(link).content)))
    response = client.get(link + "&view=stretched", headers={"Origin": STUDIO})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["access-control-allow-origin"] == STUDIO
    stretched = np.asarray(Image.open(io.BytesIO(response.content)))
    assert stretched.shape == original.shape == (32, 32)
    assert (int(original.min()), int(original.max())) == (41, 65)
    assert (int(stretched.min()), int(stretched.max())) == (0, 255)
    assert np.array_equal(stretched == 255, original == 65)  # the same pixels make the digit


def test_a_bad_view_or_an_undecodable_input_is_a_clear_422(media, settings) -> None:
    client, merged, link = media
    bogus = client.get(link + "&view=inverted")
    assert bogus.status_code == 422 and "view" in bogus.json()["detail"]
    ref = InputStore(merged.data_dir).put(b"\x89PNG\r\n\x1a\n not really a png", "png")
    broken = InputLinks.of(merged).link(ref).removeprefix(merged.public_url) + "&view=stretched"
    response = client.get(broken)
    assert response.status_code == 422 and "cannot be decoded as an image" in response.json()["detail"]


@pytest.mark.parametrize("bad", ["label.example.com", "https://label.example.com/projects", "ftp://x.example"])
def test_extra_origins_must_be_origins(bad) -> None:
    with pytest.raises(ValidationError, match="is not an origin"):
        Settings(label_studio_origins=bad)
