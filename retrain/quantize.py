"""Static int8 post-training quantization with ONNX Runtime's tools (QDQ), calibrated on real inputs.

No torch here: PTQ works on any ONNX classifier, including ones users bring. Calibration
images should be a sample of recent production inputs, so the activation ranges are the
ones the model will see after rollout.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from shiftwatch.errors import Invalid
from shiftwatch.retrain.export import optimize_onnx
from shiftwatch.retrain.runtime import INPUT_NAME

# ORT's calibration keeps every batch's activations in memory; 512 images of 32x32 cover
# every class several times and calibrate in about a second here.
MAX_CALIBRATION_IMAGES = 512


class ImageCalibrationReader(CalibrationDataReader):
    """Feeds calibration images to ORT's calibrator in fixed-size batches."""

    def __init__(self, images: np.ndarray, batch_size: int = 32, input_name: str = INPUT_NAME) -> None:
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.batch_size = batch_size
        self.input_name = input_name
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= len(self.images):
            return None
        batch = self.images[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return {self.input_name: batch}

    def rewind(self) -> None:
        self.position = 0


@dataclass(frozen=True, slots=True)
class QuantizeConfig:
    per_channel: bool = True
    # 7-bit weights ([-64, 64]): on x86 CPUs without VNNI (AVX2, and AVX-512 before Cascade
    # Lake; many AMD EPYCs) ORT's U8S8 kernels sum u8 x s8 pairs in int16 (VPMADDUBSW), which
    # saturates past 32767; 2 x 255 x 64 = 32640 never does, so one artifact answers the same
    # on every CPU. On a VNNI machine it costs 0-0.3 points here (CROSS_CPU_REDUCE_RANGE).
    reduce_range: bool = True
    # MinMax: deterministic, and on a ReLU CNN with [0, 1] inputs the ranges have no long tails.
    method: str = "minmax"
    seed: int = 0


_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}


def sample_calibration(images: np.ndarray, seed: int, limit: int = MAX_CALIBRATION_IMAGES) -> np.ndarray:
    """A seeded subsample of at most ``limit`` images (all of them when fewer)."""
    if len(images) <= limit:
        return images
    rng = np.random.default_rng(seed)
    return images[np.sort(rng.choice(len(images), size=limit, replace=False))]


def quantize_int8(
    fp32_model: Path, target: Path, calibration_images: np.ndarray, config: QuantizeConfig | None = None
) -> Path:
    """Write a static int8 QDQ model of ``fp32_model`` (unoptimized export) with ORT optimizations saved in.

    Activations are uint8 and weights int8 (the U8S8 pair ORT's x86 kernels are fastest on).
    """
    config = config or QuantizeConfig()
    if len(calibration_images) == 0:
        raise Invalid("calibration", "static quantization needs calibration images")
    if config.method not in _METHODS:
        raise Invalid("method", f"must be one of {', '.join(_METHODS)}")
    sample = sample_calibration(calibration_images, config.seed)
    with tempfile.TemporaryDirectory(prefix="shiftwatch-ptq-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "qdq.onnx"
        # Shape inference + fusion first, as ORT's quantization guide asks.
        quant_pre_process(str(fp32_model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            ImageCalibrationReader(sample),
            quant_format=QuantFormat.QDQ,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=_METHODS[config.method],
        )
        return optimize_onnx(quantized, target)
