"""Digits images, corruptions and shift scenarios: shapes, ranges, determinism, and no torch needed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from shiftwatch.errors import Invalid
from shiftwatch.examples import digits


def test_images_are_32x32_floats_in_unit_range_with_all_ten_classes() -> None:
    images, labels = digits.load_digits_images()
    assert images.shape == (1797, 1, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert set(labels.tolist()) == set(range(10))


def test_split_is_disjoint_stratified_and_the_same_for_the_same_seed() -> None:
    a, b, c = digits.split_digits(0), digits.split_digits(0), digits.split_digits(1)
    assert np.array_equal(a.test.labels, b.test.labels) and np.array_equal(a.test.images, b.test.images)
    assert not np.array_equal(a.test.images, c.test.images)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert all(np.bincount(part.labels, minlength=10).min() > 0 for part in (a.train, a.val, a.test))


@pytest.mark.parametrize("name", sorted(digits.CORRUPTIONS))
def test_every_corruption_is_pure_seeded_and_grows_with_severity(name: str) -> None:
    images = digits.split_digits(0).test.images[:40]
    before = images.copy()
    one = digits.corrupt(images, name, 1, np.random.default_rng(3))
    again = digits.corrupt(images, name, 1, np.random.default_rng(3))
    five = digits.corrupt(images, name, 5, np.random.default_rng(3))
    assert np.array_equal(images, before)  # input untouched
    assert np.array_equal(one, again)  # same rng seed, same output
    assert one.shape == images.shape and one.dtype == np.float32
    assert one.min() >= 0.0 and one.max() <= 1.0
    assert np.abs(five - images).mean() > np.abs(one - images).mean()


def test_unknown_corruption_or_severity_is_invalid() -> None:
    images = digits.split_digits(0).test.images[:2]
    with pytest.raises(Invalid, match="corruption"):
        digits.corrupt(images, "fog", 1, np.random.default_rng(0))
    with pytest.raises(Invalid, match="severity"):
        digits.corrupt(images, "blur", 6, np.random.default_rng(0))


def test_label_shift_follows_the_requested_proportions() -> None:
    labels = digits.split_digits(0).train.labels
    index = digits.label_shift_indices(labels, {3: 0.75, 7: 0.25}, 4000, np.random.default_rng(0))
    counts = np.bincount(labels[index], minlength=10) / 4000
    assert abs(counts[3] - 0.75) < 0.03 and abs(counts[7] - 0.25) < 0.03
    assert counts.sum() - counts[3] - counts[7] == 0


def test_held_out_class_is_absent_from_the_kept_indices() -> None:
    labels = digits.split_digits(0).train.labels
    kept, held = digits.hold_out_class(labels, 9)
    assert 9 not in set(labels[kept].tolist()) and set(labels[held].tolist()) == {9}
    assert len(kept) + len(held) == len(labels)


def test_png_round_trip_is_within_one_grey_level() -> None:
    image = digits.split_digits(0).test.images[0]
    decoded = digits.decode_png(digits.encode_png(image))
    assert decoded.shape == (1, 32, 32)
    assert np.abs(decoded - image).max() <= 0.5 / 255 + 1e-6


def test_garbage_bytes_are_an_invalid_image() -> None:
    with pytest.raises(Invalid, match="image"):
        digits.decode_png(b"not a png")


def test_digits_and_runtime_import_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises
        "import shiftwatch.examples.digits, shiftwatch.retrain.runtime, shiftwatch.retrain.quantize\n"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
