"""Request bodies to model inputs: PNG/JPEG bytes or a JSON array become one float32 image, plus stored bytes.

The resize/crop, channel order, value range and mean/std are the version's ``InputSpec``
(``retrain/contract.py``): the same code retraining uses on stored inputs.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from shiftwatch.errors import Invalid, TooLarge
from shiftwatch.retrain.contract import InputSpec


@dataclass(frozen=True, slots=True)
class DecodedInput:
    """One image as the model wants it, and how to store what the client sent (encoded later, off the hot path)."""

    tensor: np.ndarray  # (channels, height, width) float32: the version's input_spec applied (mean/std and all)
    raw: bytes | None  # the client's PNG/JPEG bytes, re-encoded before they are stored
    extension: str  # "png" or "jpg"
    pixels: np.ndarray | None = None  # a JSON body's 0..1 RGB pixels before normalisation (what gets stored)


# A JSON number as clients send it ("0.123456789, ") is at most ~25 characters: a body longer than
# this per value cannot be the model's input, so it is refused before json.loads spends time on it.
JSON_BYTES_PER_VALUE = 32


def decode(body: bytes, content_type: str, spec: InputSpec, *, max_pixels: int) -> DecodedInput:
    """Raw image bytes (Content-Type image/*), or a JSON array of shape [H, W] or [C, H, W] of RGB/gray pixels in 0..1,
    made into the model's input by the version's declared preprocessing (``InputSpec``).

    CPU-heavy: the gateway runs it in its decode threads, never on the event loop.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("image/"):
        tensor = spec.normalise(_image_pixels(body, spec, max_pixels))
        return DecodedInput(tensor, body, "jpg" if "jp" in media else "png")
    if media == "application/json":
        pixels = _json_tensor(body, spec.shape)
        return DecodedInput(spec.normalise(pixels), None, "png", pixels)
    raise Invalid("content-type", "send image/png, image/jpeg or application/json")


def _image_pixels(body: bytes, spec: InputSpec, max_pixels: int) -> np.ndarray:
    """Read the header first (``Image.open`` is lazy) and refuse too many pixels before any are decoded."""
    _, height, width = spec.shape
    try:
        image = Image.open(io.BytesIO(body), formats=["PNG", "JPEG"])
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise Invalid("body", "is not a readable PNG or JPEG image") from None
    columns, rows = image.size
    if columns * rows > max_pixels:
        raise TooLarge(
            f"image: {columns}x{rows} = {columns * rows} pixels, over the limit of {max_pixels}"
            " (SHIFTWATCH_GATEWAY_MAX_IMAGE_PIXELS); resize it before sending"
        )
    try:
        image.draft(spec.mode, (width, height))  # JPEG decodes straight at 1/2..1/8 scale; no-op for PNG
        return spec.pixels(image)
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image: {exc}") from None
    except (OSError, ValueError, SyntaxError):
        raise Invalid("body", "is not a readable PNG or JPEG image (corrupt or truncated)") from None


def _json_tensor(body: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    limit = JSON_BYTES_PER_VALUE * int(np.prod(shape)) + 1024
    if len(body) > limit:
        raise TooLarge(f"body: {len(body)} bytes of JSON, more than an array of shape {list(shape)} needs ({limit})")
    try:
        array = np.asarray(json.loads(body), dtype=np.float32)
    except RecursionError:
        raise Invalid("body", f"JSON is nested too deeply; send an array of shape {list(shape)}") from None
    except (ValueError, TypeError):
        raise Invalid("body", "must be a JSON array of numbers") from None
    if array.ndim == 2:
        array = array[None]
    if array.shape != shape:
        raise Invalid("body", f"array has shape {list(array.shape)}; the model takes {list(shape)}")
    if not np.isfinite(array).all():
        raise Invalid("body", "array values must be finite")
    return np.ascontiguousarray(array)


def stored_bytes(decoded: DecodedInput, max_bytes: int) -> bytes:
    """What goes to the input store: the client's image decoded and re-encoded, or a PNG of a JSON array.

    Re-encoding keeps the pixels and drops everything else a client can hide in a file (text and
    private chunks, EXIF, trailing bytes: issue 16.13 stored a 20 MB chunk inside a valid PNG
    each time). An image still over ``max_bytes`` once re-encoded is refused (``TooLarge``).
    A JSON array is stored as its 0..1 pixels before normalisation (8-bit, like a camera frame).
    """
    if decoded.raw is None:
        source = decoded.tensor if decoded.pixels is None else decoded.pixels
        pixels = np.clip(source * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    else:
        image = Image.open(io.BytesIO(decoded.raw), formats=["PNG", "JPEG"])  # pixel count checked by decode()
        if image.mode not in ("1", "L", "LA", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
    buffer = io.BytesIO()
    # icc_profile=None: PIL would otherwise copy the client's (arbitrarily large) profile into the new file.
    image.save(buffer, format="JPEG" if decoded.extension == "jpg" else "PNG", icc_profile=None,
               **({"quality": 95} if decoded.extension == "jpg" else {}))
    if buffer.tell() > max_bytes:
        raise TooLarge(
            f"input image: {buffer.tell()} bytes re-encoded, over the limit of {max_bytes} (SHIFTWATCH_INPUT_MAX_BYTES)"
        )
    return buffer.getvalue()
