"""The realistic example's image set: digits drawn at random size, place and colour on scikit-image photo textures.

No photo data set is available offline, so this is built from what is: scikit-learn's digits
(the labels) over crops of scikit-image's bundled sample images (astronaut, coffee, bricks,
grass, ...). Harder than the 32x32 digits: 3 channels, clutter, scale and position vary.
Drift uses the digits corruption families that apply to colour images (``COLOUR_CORRUPTIONS``).
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

from shiftwatch.errors import Invalid
from shiftwatch.examples.digits import CORRUPTIONS, SEVERITIES

TEXTURES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
            "brick", "grass", "gravel", "coins", "moon", "camera")  # fmt: skip
# The families whose code is channel-agnostic (the geometric ones assume 1x32x32).
TEXTURE_SIDE = 192
MIN_CONTRAST = 0.35
COLOUR_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "blur", "brightness", "contrast", "invert")


@lru_cache(maxsize=1)
def _textures() -> tuple[np.ndarray, ...]:
    from skimage import data

    out = []
    for name in TEXTURES:
        image = getattr(data, name)()
        image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
        # Shorter side 192: crops keep the texture at 1-2x the image size and resizing stays cheap.
        scale = TEXTURE_SIDE / min(image.shape[:2])
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        out.append(np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)))
    return tuple(out)


def render(n: int, seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, size, size, 3), int64 labels): one digit per image on a random texture crop."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rng = np.random.default_rng(seed)
    textures = _textures()
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for i in range(n):
        index = int(rng.integers(len(bunch.target)))
        labels[i] = bunch.target[index]
        texture = textures[int(rng.integers(len(textures)))]
        crop = int(rng.integers(size, min(texture.shape[:2]) + 1))
        top, left = (int(rng.integers(dim - crop + 1)) for dim in texture.shape[:2])
        background = np.asarray(Image.fromarray(texture[top : top + crop, left : left + crop]).resize((size, size)), np.float32) / 255
        side = int(rng.integers(size // 2, size * 7 // 8))
        stroke = np.asarray(Image.fromarray(np.round(bunch.images[index] / 16 * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR), np.float32) / 255
        y, x = (int(rng.integers(size - side + 1)) for _ in range(2))
        alpha = np.zeros((size, size, 1), np.float32)
        alpha[y : y + side, x : x + side, 0] = stroke
        patch_mean = background[y : y + side, x : x + side].mean(axis=(0, 1))
        # A random colour at least MIN_CONTRAST away from what it covers in every channel: the clutter
        # makes the set hard, but a digit no person could read would only add label noise.
        dark = patch_mean < 0.5
        colour = rng.uniform(np.where(dark, patch_mean + MIN_CONTRAST, 0.0), np.where(dark, 1.0, patch_mean - MIN_CONTRAST))
        images[i] = np.round(np.clip(background * (1 - alpha) + colour * alpha, 0, 1) * 255)
    return images, labels


def corrupt(images: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A corrupted uint8 copy of ``images`` (N, H, W, 3) with one of the colour-safe digits corruption families."""
    if name not in COLOUR_CORRUPTIONS:
        raise Invalid("corruption", f"{name!r} is not available for colour images; use one of {', '.join(COLOUR_CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise Invalid("severity", "must be 1..5")
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / 255
    out = np.clip(CORRUPTIONS[name](x, severity, rng), 0, 1)
    return np.round(out.transpose(0, 2, 3, 1) * 255).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """One uint8 (H, W, 3) image as RGB PNG bytes (what a camera client sends); ``digits.encode_png``'s twin for colour."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
