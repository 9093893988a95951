"""Adapters from the database to arrays: labeled samples (labeling's query) and recent production inputs.

Thin on purpose: the pipeline takes arrays (``LabeledData``), so it is tested without the
database, and this module is the only place in retrain that reads labeling's tables.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.queries import window
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.db import utcnow
from shiftwatch.errors import Invalid, NotFound
from shiftwatch.labeling.queries import labeled_samples
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.training import LabeledData


def labeled_data(
    session: Session, data_dir: Path, model_name: str, since: datetime | None = None, now: datetime | None = None
) -> LabeledData:
    """Labeled production samples of ``model_name`` with their stored input images.

    Samples whose input image was not stored (or was removed) are skipped: there is nothing
    to train on. Images go through the production version's declared preprocessing (``input_spec``).
    """
    now = now or utcnow()
    store = InputStore(data_dir)
    blobs, labels, ages, ids = [], [], [], []
    for sample in labeled_samples(session, model_name, since=since):
        if not sample.input_ref:
            continue
        try:
            blobs.append(store.get(sample.input_ref))
        except NotFound:
            continue
        labels.append(int(sample.label))
        ages.append((now - sample.ts).total_seconds() / 86400.0)
        ids.append(str(sample.prediction_id))
    spec = _production_spec(session, model_name)
    return LabeledData(decode_inputs(blobs, spec), np.asarray(labels, np.int64), np.asarray(ages, np.float64), tuple(ids))


def recent_inputs(session: Session, data_dir: Path, model_version_id: int, limit: int = 512) -> np.ndarray:
    """The last ``limit`` production inputs the version saw (those stored): PTQ calibration data."""
    store = InputStore(data_dir)
    blobs = []
    for ref in window(session, model_version_id, last_n=limit).input_ref:
        if ref:
            try:
                blobs.append(store.get(ref))
            except NotFound:
                continue
    version = session.get(ModelVersion, model_version_id)
    return decode_inputs(blobs, InputSpec.from_dict(version.input_spec if version else None))


def decode_inputs(blobs: list[bytes], spec: InputSpec) -> np.ndarray:
    """Stored PNG/JPEG inputs as one (N, C, H, W) batch of model inputs, the gateway's preprocessing applied."""
    if not blobs:
        return np.zeros((0, *spec.shape), dtype=np.float32)
    images = []
    for blob in blobs:
        try:
            with Image.open(io.BytesIO(blob)) as image:
                images.append(spec.model_input(image))
        except (OSError, ValueError) as exc:
            raise Invalid("image", f"a stored input is not a readable image: {exc}") from None
    return np.stack(images)


def _production_spec(session: Session, model_name: str) -> InputSpec:
    production = registry.versions_in_state(session, model_name, "production")
    return InputSpec.from_dict(production[-1].input_spec if production else None)
