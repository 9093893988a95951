"""Issue 16.13: the input store keeps re-encoded pixels only, within a size cap, and under the retention policy."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image
from sqlalchemy import select

from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.tables import Prediction
from shiftwatch.labeling.tables import LabelTask
from shiftwatch.maintenance import retention_job
from tests.support.collector import records, store_predictions
from tests.support.rollout import add_version


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def with_private_chunk(image: bytes, size: int) -> bytes:
    """A valid PNG carrying ``size`` bytes in an ancillary chunk after IHDR (decoders skip it) and a trailer."""
    data = b"\x00" * size
    chunk = struct.pack(">I", size) + b"juNK" + data + struct.pack(">I", zlib.crc32(b"juNK" + data) & 0xFFFFFFFF)
    return image[:33] + chunk + image[33:] + b"trailing bytes" * 100


def stored_inputs(db, settings) -> list[tuple[str | None, bytes | None]]:
    store = InputStore(settings.data_dir)
    with db.session() as session:
        refs = list(session.scalars(select(Prediction.input_ref).order_by(Prediction.ts)))
    return [(ref, None if ref is None else store.get(ref)) for ref in refs]


def predict(api, body: bytes) -> None:
    response = api.post("/v1/models/digits/predict", content=body, headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    assert api.app.state.gateway.writer.flush()


def test_the_gateway_stores_the_pixels_not_the_clients_file(api, db, settings):
    # Before: the 20 MB file was stored byte for byte, for every request.
    add_version(db, settings, "v1", state="production")
    pixels = (np.random.default_rng(3).random((32, 32)) * 255).astype(np.uint8)
    stuffed = with_private_chunk(png(pixels), 20 << 20)
    predict(api, stuffed)
    [(_ref, data)] = stored_inputs(db, settings)
    assert data is not None and len(data) < 10_000, len(data or b"")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)  # the pixels are what is kept
    assert sum(p.stat().st_size for p in (settings.data_dir / "inputs").iterdir()) < 10_000


def test_an_input_over_the_cap_is_not_stored_but_its_prediction_is(db, settings):
    from fastapi.testclient import TestClient

    from shiftwatch.app import create_app

    add_version(db, settings, "v1", state="production")
    noise = (np.random.default_rng(4).random((96, 96)) * 255).astype(np.uint8)  # ~9 KB as PNG, noise compresses badly
    with TestClient(create_app(settings.model_copy(update={"input_max_bytes": 4096}), db)) as api:
        predict(api, png(noise[:32, :32]))  # ~1.1 KB: stored
        predict(api, png(noise))
        stats = api.get("/v1/gateway/stats", params={"model": "digits"}).json()
    stored = stored_inputs(db, settings)
    assert len(stored) == 2  # nothing the client sent is lost: both predictions are logged
    assert stored[0][0] is not None and stored[1][0] is None
    assert stats["inputs_refused"] == 1


def test_retention_deletes_inputs_only_once_nothing_kept_refers_to_them(db, settings, digits_model):
    # Before: retention dropped predictions and every input file stayed for ever.
    store = InputStore(settings.data_dir)
    ref = {name: store.put(png(np.full((8, 8), i * 40, np.uint8))) for i, name in enumerate(
        ["expired", "recent", "labeled", "unreferenced_fresh", "unreferenced_old"])}  # fmt: skip
    hours_ago = time.time() - 2 * 3600
    for name in ("expired", "recent", "labeled", "unreferenced_old"):
        os.utime(settings.data_dir / ref[name], (hours_ago, hours_ago))
    now = datetime.now(UTC)
    old_ts = now - timedelta(days=settings.retention_days + 2)
    old = records(2, ts=old_ts, seed=1)
    old[0].input_ref, old[1].input_ref = ref["expired"], ref["labeled"]
    store_predictions(db, settings.model_copy(update={"retention_days": settings.retention_days + 5}), old)
    recent = records(1, ts=now - timedelta(minutes=5), seed=2)
    recent[0].input_ref = ref["recent"]
    store_predictions(db, settings, recent)
    with db.session() as session:  # a labeled sample outlives its prediction, and retraining reads its image
        session.add(LabelTask(prediction_id=old[1].id, ts=old_ts, model_version_id=digits_model.id,
                              input_ref=ref["labeled"], predicted_class=1, confidence=0.5, reason="random",
                              priority=0.0, state="labeled"))  # fmt: skip

    run = retention_job(db, settings)

    assert run.ran and run.removed >= 1 and run.inputs_removed == 2
    kept = {name for name, r in ref.items() if (settings.data_dir / r).exists()}
    assert kept == {"recent", "labeled", "unreferenced_fresh"}
    assert store.get(ref["labeled"]) == png(np.full((8, 8), 2 * 40, np.uint8))
    assert retention_job(db, settings).inputs_removed == 0  # nothing left to delete; a rerun is harmless


def test_storing_an_input_again_refreshes_its_age(settings):
    store = InputStore(settings.data_dir)
    image = png(np.zeros((4, 4), np.uint8))
    path = settings.data_dir / store.put(image)
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    store.put(image)  # the gateway about to log a second prediction of the same image
    assert time.time() - path.stat().st_mtime < 60
