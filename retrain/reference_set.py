"""A contract model's reference set: the ``.npz`` of uint8 ``images`` and int ``labels`` that retraining keeps.

Retraining splits it 65/15/20 into train/val/test, stratified by class, seed 0: it fine-tunes on
train (with the labeled production samples), and the gate scores old and new on test. Train
your production model on the train split only, so the gate's test images stay unseen:
``split_reference_set`` (and ``shiftwatch retrain split-reference``) give you the very same split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shiftwatch.errors import Invalid
from shiftwatch.retrain.digits import DigitsSplits, stratified_split

REFERENCE_SPLIT_SEED = 0
# train is what remains: 1 - 0.15 - 0.2 = 0.65
VAL_FRACTION, TEST_FRACTION = 0.15, 0.2


def read_reference_set(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The set's uint8 images and int64 labels, or ``Invalid`` naming what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise Invalid("reference_set", f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            raw, labels = data["images"], np.asarray(data["labels"], np.int64)
    except (OSError, ValueError, KeyError) as exc:
        raise Invalid("reference_set", f"{path.name} is not an .npz with 'images' and 'labels': {exc}") from None
    if len(raw) != len(labels) or len(labels) < 10:
        raise Invalid("reference_set", f"needs as many labels as images and at least 10 of each; has {len(raw)} and {len(labels)}")
    return raw, labels


def split_reference_set(path: Path, seed: int = REFERENCE_SPLIT_SEED) -> DigitsSplits:
    """The set's train/val/test (65/15/20, stratified) exactly as retraining splits it, images still uint8."""
    raw, labels = read_reference_set(path)
    return stratified_split(raw, labels, seed, VAL_FRACTION, TEST_FRACTION)


def write_reference_splits(path: Path, out_dir: Path, seed: int = REFERENCE_SPLIT_SEED) -> dict[str, tuple[Path, int]]:
    """``train.npz``, ``val.npz`` and ``test.npz`` in ``out_dir`` (``images``, ``labels``); each split's file and size."""
    splits = split_reference_set(path, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in ("train", "val", "test"):
        split = getattr(splits, name)
        target = out_dir / f"{name}.npz"
        np.savez(target, images=split.images, labels=split.labels)
        written[name] = (target, len(split))
    return written
