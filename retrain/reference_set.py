"""A contract model's reference set: the ``.npz`` of uint8 ``images`` and int ``labels`` that retraining keeps.

Retraining splits it 65/15/20 into train/val/test, stratified by class, seed 0: it fine-tunes on
train (with the labeled production samples), and the gate scores old and new on test. Train
your production model on the train split only, so the gate's test images stay unseen:
``split_reference_set`` (and ``shiftwatch retrain split-reference``) give you the very same split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftwatch.errors import Invalid
from shiftwatch.retrain.model_contract import load_callable

REFERENCE_SPLIT_SEED = 0
# train is what remains: 1 - 0.15 - 0.2 = 0.65
VAL_FRACTION, TEST_FRACTION = 0.15, 0.2
_LOADER = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")  # "package.module:function"


@dataclass(frozen=True, slots=True)
class Split:
    """Images and labels of one split of a reference set."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, slots=True)
class Splits:
    train: Split
    val: Split
    test: Split


def stratified_split(
    images: np.ndarray, labels: np.ndarray, seed: int, val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION
) -> Splits:
    """Any labeled image set as train/val/test, stratified by class; the same for the same seed."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=labels)
    train, val = train_test_split(
        rest, test_size=val_fraction / (1.0 - test_fraction), random_state=seed, stratify=labels[rest]
    )
    take = lambda idx: Split(images[np.sort(idx)], labels[np.sort(idx)])
    return Splits(train=take(train), val=take(val), test=take(test))


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


def is_loader(reference: str) -> bool:
    """A reference set named as ``package.module:function`` (called for the arrays) rather than an .npz path."""
    return _LOADER.fullmatch(reference) is not None


def read_reference(reference: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A contract's reference set: an .npz file, or a loader function returning (uint8 images, labels)."""
    if isinstance(reference, Path) or not is_loader(reference):
        return read_reference_set(Path(reference))
    raw, labels = load_callable(reference, "reference_set")()
    raw, labels = np.asarray(raw), np.asarray(labels, np.int64)
    if raw.dtype != np.uint8 or len(raw) != len(labels) or len(labels) < 10:
        raise Invalid("reference_set", f"{reference} must return uint8 images and as many int labels (at least 10)")
    return raw, labels


def split_reference_set(path: Path, seed: int = REFERENCE_SPLIT_SEED) -> Splits:
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
