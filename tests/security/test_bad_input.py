"""Hostile and malformed bodies get a 4xx naming what is wrong, never a 500, and store nothing (issue 16.15)."""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import numpy as np
import pytest
from sqlalchemy import func, select

from shiftwatch.collector.tables import Prediction
from shiftwatch_client.wire import CONTENT_TYPE
from tests.support.collector import as_json, as_npz, records
from tests.support.hostile import json_bomb, png_claiming
from tests.support.rollout import add_version, png_image

MIB = 2**20


def stored(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


def refused(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    if field is not None:
        assert body["field"] == field, body
    return body


# -- ingest ---------------------------------------------------------------------------------------
def test_predicted_class_past_int64_is_422_naming_the_field(api, db, digits_model):
    payload = as_json(records(3))
    payload["predictions"][1]["predicted_class"] = 9223372036854775808
    refused(api.post("/v1/predictions", content=json.dumps(payload), headers={"content-type": "application/json"}),
            422, "predictions[1].predicted_class")
    assert stored(db) == 0


def lying_npz(member: str, shape: tuple[int, ...]) -> bytes:
    """A valid batch whose ``member`` is replaced by a .npy header claiming ``shape`` over a few bytes of data."""
    source = zipfile.ZipFile(io.BytesIO(as_npz(records(3))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == f"{member}.npy":
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
                data = header.getvalue() + b"\0" * 64
            archive.writestr(info.filename, data)
    return out.getvalue()


def test_npz_member_claiming_8_tib_is_422_before_allocation(api, db, digits_model):
    body = lying_npz("embeddings", (2**20, 2**21))  # 2^41 float32 = 8 TiB
    detail = refused(api.post("/v1/predictions", content=body, headers={"content-type": CONTENT_TYPE}),
                     422, "embeddings")["detail"]
    assert "8796093022208 bytes); the member holds 64" in detail
    assert stored(db) == 0


def test_deeply_nested_json_to_ingest_is_4xx(api, db, digits_model):
    body = '{"predictions": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.post("/v1/predictions", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["field"] == "body"
    assert stored(db) == 0


def test_gzip_json_inflating_past_the_json_cap_is_413_naming_the_setting(api, db, digits_model):
    body = json_bomb(20 * MIB)  # ~100 KiB sent; the cap is 16 MiB
    assert len(body) < MIB
    detail = refused(api.post("/v1/predictions", content=body,
                              headers={"content-type": "application/json", "content-encoding": "gzip"}), 413)["detail"]
    assert "SHIFTWATCH_MAX_JSON_BYTES" in detail
    assert stored(db) == 0


def test_npz_may_inflate_past_the_json_cap(app, api, db, digits_model):
    # The JSON cap is about parse cost; .npz is the bulk format and keeps max_request_bytes.
    app.state.settings.max_json_bytes = 1000
    body = gzip.compress(as_npz(records(50)))
    assert api.post("/v1/predictions", content=body,
                    headers={"content-type": CONTENT_TYPE, "content-encoding": "gzip"}).status_code == 200
    assert stored(db) == 50


def test_truncated_or_unknown_encodings_are_422(api, db, digits_model):
    body = gzip.compress(json.dumps(as_json(records(3))).encode())
    truncated = api.post("/v1/predictions", content=body[: len(body) // 2],
                         headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert "truncated" in refused(truncated, 422, "body")["detail"]
    refused(api.post("/v1/predictions", content=body, headers={"content-type": "application/json",
                                                                "content-encoding": "br"}), 422, "content-encoding")
    assert stored(db) == 0


# -- gateway --------------------------------------------------------------------------------------
def gateway_stored(api, db) -> int:
    assert api.app.state.gateway.writer.flush()
    return stored(db)


def predict(api, body: bytes | str, content_type: str = "image/png", **headers):
    return api.post("/v1/models/digits/predict", content=body, headers={"content-type": content_type, **headers})


def test_png_claiming_20000x20000_is_413_without_decoding(db, settings, api):
    add_version(db, settings, "v1", state="production")
    detail = refused(predict(api, png_claiming(20000, 20000, rgb=False)), 413)["detail"]
    assert "400000000 pixels" in detail
    assert gateway_stored(api, db) == 0


def test_png_over_the_configured_pixel_cap_is_413_naming_size_and_cap(db, settings, api):
    add_version(db, settings, "v1", state="production")
    detail = refused(predict(api, png_claiming(5000, 4000)), 413)["detail"]
    assert "5000x4000" in detail and "16777216" in detail and "SHIFTWATCH_GATEWAY_MAX_IMAGE_PIXELS" in detail
    api.app.state.settings.gateway_max_image_pixels = 1000
    assert "32x32" in refused(predict(api, png_image(0)), 413)["detail"]
    assert gateway_stored(api, db) == 0


@pytest.mark.parametrize("kind", ["gif", "truncated"])
def test_other_formats_and_truncated_images_are_422(db, settings, api, kind):
    add_version(db, settings, "v1", state="production")
    if kind == "gif":
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("L", (32, 32)).save(buffer, format="GIF")
        body = buffer.getvalue()
    else:
        body = png_image(1)[:-40]
    refused(predict(api, body), 422, "body")
    assert gateway_stored(api, db) == 0


def test_deeply_nested_json_to_predict_is_4xx(db, settings, api):
    add_version(db, settings, "v1", state="production")
    deep = "[" * 100_000 + "]" * 100_000
    assert "more than an array of shape [1, 32, 32] needs" in refused(predict(api, deep, "application/json"), 413)["detail"]
    shallow_enough_to_read = "[" * 5_000 + "]" * 5_000  # under the size bound: json.loads recurses
    assert "nested too deeply" in refused(predict(api, shallow_enough_to_read, "application/json"), 422, "body")["detail"]
    assert gateway_stored(api, db) == 0


def test_gateway_body_over_the_limit_is_413_declared_or_streamed(db, settings, api):
    add_version(db, settings, "v1", state="production")
    api.app.state.settings.max_request_bytes = 500
    body = png_image(2)
    assert len(body) > 500
    assert "500" in refused(predict(api, body), 413)["detail"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    streamed = api.post("/v1/models/digits/predict", content=chunks(), headers={"content-type": "image/png"})
    assert "over the limit of 500" in refused(streamed, 413)["detail"]
    assert gateway_stored(api, db) == 0
