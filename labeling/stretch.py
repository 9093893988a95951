"""The contrast-stretched copy of a stored input that triagers see beside the original.

Under a contrast or brightness drift the very samples worth labeling are the hardest to read
(the demo's drifted digits span grey levels 41-65 of 255). Stretching the 1st..99th
percentile of the grey levels to the full range makes the content legible again; the
original stays next to it, so nobody labels what the stretch invented.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from shiftwatch.errors import Invalid

# Percentiles mapped to black and white: a few outlier pixels do not decide the stretch.
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0


@dataclass(frozen=True, slots=True)
class ImageSize:
    width: int
    height: int


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > max_pixels:
            raise Invalid("view", f"the input is {image.width}x{image.height}, over {max_pixels} pixels")
        image.load()
    except (OSError, Image.DecompressionBombError, ValueError) as exc:
        raise Invalid("view", f"the stored input cannot be decoded as an image ({type(exc).__name__})") from None
    return image


def image_size(data: bytes) -> ImageSize | None:
    """Width and height from the image header; None when the bytes are not an image PIL reads."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return ImageSize(image.width, image.height)
    except (OSError, ValueError):
        return None


def contrast_stretched_png(data: bytes, max_pixels: int) -> bytes:
    """PNG of ``data`` with its levels' 1st..99th percentile stretched to 0..255 (one mapping for all channels)."""
    image = _open(data, max_pixels)
    mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
    pixels = np.asarray(image.convert(mode), dtype=np.float32)
    low, high = np.percentile(pixels, [LOW_PERCENTILE, HIGH_PERCENTILE])
    scale = 255.0 / max(float(high - low), 1.0)
    stretched = np.clip((pixels - low) * scale, 0, 255).round().astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(stretched).save(out, format="PNG")
    return out.getvalue()
