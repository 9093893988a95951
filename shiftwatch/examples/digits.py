"""scikit-learn's bundled digits as 32x32 images, MNIST-C style corruptions and shift scenarios.

Everything here is numpy + scikit-image + Pillow (no torch), so the gateway, the demo and
the detectors' tests can make shifted traffic without the training extra. Images are
float32 arrays shaped (N, 1, 32, 32) with values in [0, 1]; labels are int64.
Corruptions are pure functions: they return new arrays and draw randomness only from the
``rng`` they are given.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image

from shiftwatch.errors import Invalid
from shiftwatch.retrain.reference_set import TEST_FRACTION, VAL_FRACTION, Splits, stratified_split

IMAGE_SIZE = 32
NUM_CLASSES = 10
CLASS_NAMES = [str(i) for i in range(NUM_CLASSES)]
INPUT_SPEC = {"shape": [1, IMAGE_SIZE, IMAGE_SIZE], "dtype": "float32", "scale": "0..1", "format": "png-grayscale"}
SEVERITIES = (1, 2, 3, 4, 5)
# The one split every model of the demo is trained and judged on (retraining's, ``reference_set``).
REFERENCE_SPLIT_SEED = 0


@lru_cache(maxsize=2)
def load_digits_images(size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits upscaled from 8x8 (values 0..16) to ``size`` x ``size`` floats in [0, 1]."""
    from skimage.transform import resize
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = (bunch.images / 16.0).astype(np.float32)  # (N, 8, 8)
    # Bilinear upscaling (order=1): smooth strokes like a camera crop, no ringing.
    large = resize(small, (len(small), size, size), order=1, mode="edge", anti_aliasing=False)
    images = np.clip(large, 0.0, 1.0).astype(np.float32)[:, None, :, :]
    images.setflags(write=False)
    labels = bunch.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def split_digits(seed: int = REFERENCE_SPLIT_SEED, val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION) -> Splits:
    """Stratified train/val/test split, the same for the same seed."""
    images, labels = load_digits_images()
    return stratified_split(images, labels, seed, val_fraction, test_fraction)


def reference_set() -> tuple[np.ndarray, np.ndarray]:
    """The digits CNN's reference set as the contract reads one: uint8 (N, 32, 32) pixels and int64 labels."""
    images, labels = load_digits_images()
    return np.rint(images[:, 0] * 255.0).astype(np.uint8), np.array(labels)


# --- corruptions -------------------------------------------------------------------------
# Parameters per severity 1..5, chosen so severity 1 costs the reference CNN a few points of
# accuracy and severity 5 makes most digits hard to read (as in MNIST-C / ImageNet-C).

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    noisy: np.ndarray = x + rng.normal(0.0, sigma, size=x.shape)
    return noisy


def _shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    photons = (60.0, 25.0, 12.0, 5.0, 3.0)[severity - 1]
    return rng.poisson(x * photons) / photons


def _impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    amount = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    draw = rng.random(x.shape)
    out = x.copy()
    out[draw < amount / 2] = 0.0
    out[(draw >= amount / 2) & (draw < amount)] = 1.0
    return out


def _gaussian_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from skimage.filters import gaussian

    sigma = (0.6, 1.0, 1.5, 2.0, 3.0)[severity - 1]
    blurred: np.ndarray = gaussian(x, sigma=(0, 0, sigma, sigma), mode="constant", preserve_range=True)
    return blurred


def _brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return x + (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]


def _contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    scaled: np.ndarray = (x - mean) * factor + mean
    return scaled


def _affine(x: np.ndarray, make: Callable[[np.random.Generator], object], rng: np.random.Generator) -> np.ndarray:
    from skimage.transform import AffineTransform, warp

    centre = AffineTransform(translation=(-(IMAGE_SIZE - 1) / 2, -(IMAGE_SIZE - 1) / 2))
    back = AffineTransform(translation=((IMAGE_SIZE - 1) / 2, (IMAGE_SIZE - 1) / 2))
    out = np.empty_like(x)
    for i in range(len(x)):
        transform = centre + make(rng) + back
        out[i, 0] = warp(x[i, 0], transform.inverse, order=1, mode="constant", cval=0.0)
    return out


def _rotation(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from skimage.transform import AffineTransform

    degrees = (10.0, 20.0, 30.0, 45.0, 60.0)[severity - 1]
    return _affine(x, lambda r: AffineTransform(rotation=np.deg2rad(degrees * r.choice((-1.0, 1.0)))), rng)


def _translation(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from skimage.transform import AffineTransform

    pixels = (2.0, 4.0, 6.0, 8.0, 10.0)[severity - 1]

    def make(r: np.random.Generator) -> AffineTransform:
        angle = r.uniform(0.0, 2 * np.pi)
        return AffineTransform(translation=(pixels * np.cos(angle), pixels * np.sin(angle)))

    return _affine(x, make, rng)


def _shear(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from skimage.transform import AffineTransform

    amount = (0.15, 0.3, 0.45, 0.6, 0.8)[severity - 1]
    return _affine(x, lambda r: AffineTransform(shear=amount * r.choice((-1.0, 1.0))), rng)


def _invert(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    # Severity blends towards the negative: 1.0 is a full inversion (a camera set to the wrong mode).
    blend = (0.2, 0.4, 0.6, 0.8, 1.0)[severity - 1]
    return (1.0 - blend) * x + blend * (1.0 - x)


def _jpeg(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    # A camera or upload path that recompresses: 8x8 block artefacts, ringing around strokes.
    quality = (40, 25, 15, 10, 5)[severity - 1]
    out = np.empty_like(x)
    for i in range(len(x)):
        buffer = io.BytesIO()
        Image.fromarray(np.round(np.clip(x[i, 0], 0, 1) * 255).astype(np.uint8), mode="L").save(buffer, "JPEG", quality=quality)
        out[i, 0] = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
    return out


def _rescale(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    # A lower-resolution camera: down to size x size pixels and back up (bilinear).
    size = (24, 18, 14, 11, 8)[severity - 1]
    out = np.empty_like(x)
    for i in range(len(x)):
        small = Image.fromarray(x[i, 0].astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR)
        out[i, 0] = np.asarray(small.resize(x.shape[2:][::-1], Image.Resampling.BILINEAR), dtype=np.float32)
    return out


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "blur": _gaussian_blur,
    "brightness": _brightness,
    "contrast": _contrast,
    "rotation": _rotation,
    "translation": _translation,
    "shear": _shear,
    "invert": _invert,
    "jpeg": _jpeg,
    "rescale": _rescale,
}


def corrupt(images: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Return a corrupted copy of ``images`` (N, 1, H, W) in [0, 1]; ``severity`` is 1..5."""
    if name not in CORRUPTIONS:
        raise Invalid("corruption", f"unknown {name!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise Invalid("severity", "must be 1..5")
    if images.ndim != 4 or images.shape[1] != 1:
        raise Invalid("images", f"expected (N, 1, H, W), got {images.shape}")
    out = CORRUPTIONS[name](np.asarray(images, dtype=np.float32), severity, rng)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# --- label shift and unseen classes ------------------------------------------------------


def label_shift_indices(
    labels: np.ndarray, proportions: dict[int, float] | np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices of ``n`` samples drawn (with replacement) so classes follow ``proportions``.

    ``proportions`` maps class -> weight (need not sum to 1; missing classes get 0), or is an
    array of one weight per class. Within a class every sample is equally likely.
    """
    weights = np.zeros(NUM_CLASSES, dtype=np.float64)
    if isinstance(proportions, dict):
        for cls, weight in proportions.items():
            weights[int(cls)] = weight
    else:
        weights[: len(proportions)] = proportions
    if (weights < 0).any() or weights.sum() <= 0:
        raise Invalid("proportions", "weights must be non-negative and not all zero")
    present = np.bincount(labels, minlength=NUM_CLASSES) > 0
    if (weights[~present] > 0).any():
        raise Invalid("proportions", "asks for a class that has no samples")
    classes = rng.choice(NUM_CLASSES, size=n, p=weights / weights.sum())
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(classes)}
    return np.array([rng.choice(by_class[c]) for c in classes], dtype=np.int64)


def hold_out_class(labels: np.ndarray, held_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices without ``held_class``, indices of it): train without a class, then show it in production."""
    if not 0 <= held_class < NUM_CLASSES:
        raise Invalid("held_class", f"must be 0..{NUM_CLASSES - 1}")
    mask = labels == held_class
    return np.flatnonzero(~mask), np.flatnonzero(mask)


# --- PNG for the gateway and the input store ---------------------------------------------


def encode_png(image: np.ndarray) -> bytes:
    """One image (1, H, W) or (H, W) in [0, 1] as 8-bit grayscale PNG bytes."""
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 3:
        pixels = pixels[0]
    if pixels.ndim != 2:
        raise Invalid("image", f"expected (1, H, W) or (H, W), got {np.shape(image)}")
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def decode_png(data: bytes, size: int = IMAGE_SIZE) -> np.ndarray:
    """PNG (or JPEG) bytes as a float32 (1, size, size) image in [0, 1]; other sizes are resized."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            gray = img.convert("L")
            if gray.size != (size, size):
                gray = gray.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(gray, dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise Invalid("image", f"not a readable image: {exc}") from None
    return pixels[None, :, :]


def decode_many(blobs: list[bytes], size: int = IMAGE_SIZE) -> np.ndarray:
    """Several encoded images as one (N, 1, size, size) batch."""
    if not blobs:
        return np.zeros((0, 1, size, size), dtype=np.float32)
    return np.stack([decode_png(blob, size) for blob in blobs])
