"""A contract's reference set named as a loader function (the digits example's), not an .npz: read, checked, refused clearly."""

from __future__ import annotations

import numpy as np
import pytest

from shiftwatch.errors import Invalid
from shiftwatch.retrain.reference_set import is_loader, read_reference


def floats() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((20, 8, 8), np.float32), np.zeros(20, np.int64)


def test_the_digits_example_reference_set_is_a_loader_of_uint8_images_and_labels() -> None:
    images, labels = read_reference("shiftwatch.examples.digits:reference_set")
    assert images.dtype == np.uint8 and images.shape == (1797, 32, 32) and images.max() == 255
    assert labels.dtype == np.int64 and sorted(set(labels.tolist())) == list(range(10))


def test_paths_are_not_loaders_and_a_bad_loader_is_refused_naming_the_field() -> None:
    assert is_loader("mypkg.data:reference_set") and not is_loader("/data/reference.npz")
    assert not is_loader("reference.npz") and not is_loader("C:/data/ref.npz")
    with pytest.raises(Invalid, match="must return uint8 images") as caught:
        read_reference(f"{__name__}:floats")
    assert caught.value.field == "reference_set"
    with pytest.raises(Invalid, match="cannot import"):
        read_reference("no_such_package.data:reference_set")
