"""Adapters from the database to arrays: labeled samples (labeling package) and recent production inputs.

Thin on purpose: the pipeline takes arrays (``LabeledData``), so it is tested without the
labeling package, and this module is the only place that knows its query.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.queries import window
from shiftwatch.db import utcnow
from shiftwatch.errors import NotFound, Unavailable
from shiftwatch.retrain.digits import decode_many
from shiftwatch.retrain.training import LabeledData
from shiftwatch.settings import Settings


def labeled_data(
    session: Session, settings: Settings, model_name: str, since: datetime | None = None, now: datetime | None = None
) -> LabeledData:
    """Labeled production samples of ``model_name`` with their stored input images.

    Samples whose input image was not stored (or was removed) are skipped: there is nothing
    to train on.
    """
    try:
        from shiftwatch.labeling.queries import labeled_samples
    except ModuleNotFoundError as exc:
        if exc.name and "labeling" in exc.name:
            raise Unavailable("the labeling package is not installed; pass labeled arrays instead") from None
        raise
    now = now or utcnow()
    store = InputStore(settings.data_dir)
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
    return LabeledData(decode_many(blobs), np.asarray(labels, np.int64), np.asarray(ages, np.float64), tuple(ids))


def recent_inputs(session: Session, settings: Settings, model_version_id: int, limit: int = 512) -> np.ndarray:
    """The last ``limit`` production inputs the version saw (those stored): PTQ calibration data."""
    store = InputStore(settings.data_dir)
    blobs = []
    for ref in window(session, model_version_id, last_n=limit).input_ref:
        if ref:
            try:
                blobs.append(store.get(ref))
            except NotFound:
                continue
    return decode_many(blobs)
