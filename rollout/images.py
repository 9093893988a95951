"""Request bodies to model inputs: PNG/JPEG bytes or a JSON array become one float32 image, plus stored bytes."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from shiftwatch.errors import Invalid

DEFAULT_SHAPE = (1, 32, 32)


@dataclass(frozen=True, slots=True)
class DecodedInput:
    """One image as the model wants it, and how to store what the client sent (encoded later, off the hot path)."""

    tensor: np.ndarray  # (channels, height, width) float32 in 0..1
    raw: bytes | None  # the client's PNG/JPEG bytes, stored as is
    extension: str  # "png" or "jpg"


def input_shape(input_spec: dict[str, Any]) -> tuple[int, int, int]:
    shape = tuple(input_spec.get("shape") or DEFAULT_SHAPE)
    if len(shape) != 3:
        raise Invalid("input_spec.shape", "must be [channels, height, width]")
    return shape  # type: ignore[return-value]


def decode(body: bytes, content_type: str, input_spec: dict[str, Any]) -> DecodedInput:
    """Raw image bytes (Content-Type image/*) or a JSON array of shape [H, W] or [C, H, W] with values in 0..1."""
    channels, height, width = input_shape(input_spec)
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("image/"):
        try:
            image = Image.open(io.BytesIO(body))
            image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
        except (UnidentifiedImageError, OSError, ValueError):
            raise Invalid("body", "is not a readable PNG or JPEG image") from None
        array = np.asarray(image, dtype=np.float32) / 255.0
        array = array[None] if channels == 1 else array.transpose(2, 0, 1)
        return DecodedInput(np.ascontiguousarray(array), body, "jpg" if "jp" in media else "png")
    if media == "application/json":
        try:
            array = np.asarray(json.loads(body), dtype=np.float32)
        except (ValueError, TypeError):
            raise Invalid("body", "must be a JSON array of numbers") from None
        if array.ndim == 2:
            array = array[None]
        if array.shape != (channels, height, width):
            raise Invalid("body", f"array has shape {list(array.shape)}; the model takes {[channels, height, width]}")
        if not np.isfinite(array).all():
            raise Invalid("body", "array values must be finite")
        return DecodedInput(np.ascontiguousarray(array), None, "png")
    raise Invalid("content-type", "send image/png, image/jpeg or application/json")


def stored_bytes(decoded: DecodedInput) -> bytes:
    """What goes to the input store: the client's file, or a PNG of the array (8-bit, like a camera frame)."""
    if decoded.raw is not None:
        return decoded.raw
    pixels = np.clip(decoded.tensor * 255.0 + 0.5, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
