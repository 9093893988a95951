"""The model contract's preprocessing: declared once per version (``input_spec``), applied by the gateway and retraining.

No torch here (the gateway imports it). An image goes: decode -> resize/crop to the declared
size -> pixels in 0..1 (RGB or gray, what the input store keeps) -> channel order -> value
range -> (x - mean) / std. The digits model is one instance: 1x32x32 gray, 0..1, mean 0, std 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from shiftwatch.errors import Invalid

RESIZE_MODES = ("stretch", "center_crop")  # center_crop: shorter side to size, then the centre
CHANNEL_ORDERS = ("rgb", "bgr", "gray")
VALUE_RANGES = {"0..1": 1.0, "0..255": 255.0}


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What a model takes: (channels, height, width), how an image is fitted to it and normalised."""

    shape: tuple[int, int, int] = (1, 32, 32)
    resize: str = "stretch"
    channel_order: str = "gray"
    scale: str = "0..1"  # the value range the model's mean/std are in
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> InputSpec:
        """Read a registry row's ``input_spec`` (rows written before the contract have shape and scale only)."""
        data = dict(data or {})
        try:
            shape = tuple(int(d) for d in (data.get("shape") or (1, 32, 32)))
        except (TypeError, ValueError):
            raise Invalid("input_spec.shape", "must be [channels, height, width] of integers") from None
        if len(shape) != 3 or min(shape) <= 0:
            raise Invalid("input_spec.shape", "must be [channels, height, width] of positive sizes")
        channels = shape[0]
        if channels not in (1, 3):
            raise Invalid("input_spec.shape", f"images have 1 or 3 channels, not {channels}")
        order = str(data.get("channel_order") or ("gray" if channels == 1 else "rgb")).lower()
        if order not in CHANNEL_ORDERS or (order == "gray") != (channels == 1):
            raise Invalid("input_spec.channel_order", f"{order!r} does not fit {channels} channel(s); use gray for 1, rgb or bgr for 3")
        resize = str(data.get("resize") or "stretch").lower()
        if resize not in RESIZE_MODES:
            raise Invalid("input_spec.resize", f"must be one of {', '.join(RESIZE_MODES)}")
        scale = str(data.get("scale") or "0..1")
        if scale not in VALUE_RANGES:
            raise Invalid("input_spec.scale", f"must be one of {', '.join(VALUE_RANGES)}")
        mean = _per_channel(0.0 if data.get("mean") is None else data["mean"], channels, "mean")
        std = _per_channel(1.0 if data.get("std") is None else data["std"], channels, "std")
        if any(s <= 0 for s in std):
            raise Invalid("input_spec.std", "must be positive")
        return cls(shape, resize, order, scale, mean, std)

    def as_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape), "dtype": "float32", "resize": self.resize, "channel_order": self.channel_order,
            "scale": self.scale, "mean": list(self.mean), "std": list(self.std),
        }  # fmt: skip

    @property
    def mode(self) -> str:
        """The PIL mode images are converted to before anything else."""
        return "L" if self.shape[0] == 1 else "RGB"

    def pixels(self, image: Image.Image) -> np.ndarray:
        """A PIL image fitted to the declared size: float32 (C, H, W) in 0..1, RGB order (what is stored)."""
        _, height, width = self.shape
        image = image.convert(self.mode)
        if self.resize == "center_crop":
            columns, rows = image.size
            ratio = max(width / columns, height / rows)
            image = image.resize((max(width, round(columns * ratio)), max(height, round(rows * ratio))), Image.Resampling.BILINEAR)
            left, top = (image.size[0] - width) // 2, (image.size[1] - height) // 2
            image = image.crop((left, top, left + width, top + height))
        elif image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return np.ascontiguousarray(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (..., C, H, W) in 0..1 RGB -> the model's input: channel order, value range, mean/std."""
        x = np.asarray(pixels, dtype=np.float32)
        if self.channel_order == "bgr":
            x = x[..., ::-1, :, :]
        x = x * np.float32(VALUE_RANGES[self.scale])
        mean = np.asarray(self.mean, np.float32)[:, None, None]
        std = np.asarray(self.std, np.float32)[:, None, None]
        return np.ascontiguousarray((x - mean) / std, dtype=np.float32)

    def model_input(self, image: Image.Image) -> np.ndarray:
        return self.normalise(self.pixels(image))

    def from_uint8(self, images: np.ndarray) -> np.ndarray:
        """A batch of raw uint8 pixels (N, H, W) or (N, H, W, 3), any size, as model inputs (N, C, H, W)."""
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise Invalid("images", f"expected uint8 (N, H, W) or (N, H, W, 3) pixels, got {images.dtype} {images.shape}")
        out = np.empty((len(images), *self.shape), np.float32)
        for i, pixels in enumerate(images):
            out[i] = self.model_input(Image.fromarray(pixels))
        return out


def _per_channel(value: Any, channels: int, name: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        values = [value]
    elif isinstance(value, (list, tuple)):
        values = list(value)
    else:
        raise Invalid(f"input_spec.{name}", "must be a number or a list of numbers")
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise Invalid(f"input_spec.{name}", f"needs 1 or {channels} values, got {len(values)}")
    try:
        floats = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise Invalid(f"input_spec.{name}", "must be numbers") from None
    if not all(np.isfinite(floats)):
        raise Invalid(f"input_spec.{name}", "must be finite")
    return floats
