"""Static int8 post-training quantization with ONNX Runtime's tools (QDQ), calibrated on real inputs.

No torch here: PTQ works on any ONNX classifier, including ones users bring, whatever its
input is called and whatever its opset (below 13 it is upgraded with onnx's version
converter first: per-channel QDQ needs 13). Calibration images should be a sample of recent
production inputs, so the activation ranges are the ones the model will see after rollout.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import version_converter

from shiftwatch.retrain.ort import onnxruntime  # noqa: F401  (first: without a flavour, the line naming it)

# isort: split
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from shiftwatch.errors import Invalid
from shiftwatch.retrain import runtime
from shiftwatch.retrain.export import optimize_onnx
from shiftwatch.retrain.runtime import INPUT_NAME

# An int8 artifact must give its fp32 model's top-1 on this share of the evaluation inputs,
# or it is declined (a graph with wrong weights or scales falls far below).
QUANTIZED_MIN_AGREEMENT = 0.97
# Nodes whose name starts so stay float in int8 graphs: the model contract's output adapters
# (retrain/onnx_contract.py), so served probabilities and embeddings are not rounded to 8 bits.
FLOAT_NODE_PREFIX = "shiftwatch_float/"
# Per-channel weights need DequantizeLinear's axis attribute, which arrived in opset 13.
MIN_OPSET = 13

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
    # Which provider the artifact is for: "cpu" saves ORT's CPU-fused graph (QLinearConv, QGemm: what its
    # x86 kernels run); "openvino", "tensorrt" and "cuda" get the plain QDQ graph, which those providers
    # compile themselves and which OpenVINO leaves to the CPU once fused (retrain/placement.py).
    target: str = "cpu"


TARGETS = ("cpu", "openvino", "tensorrt", "cuda")
# The extra that installs each int8 target's provider (docs/serving.md, "ONNX Runtime flavours").
FLAVOUR_OF = {"openvino": "openvino", "tensorrt": "gpu", "cuda": "gpu"}


def require_target(target: str, doing: str) -> None:
    """Refuse a target that is not one of ``TARGETS``, or whose provider this onnxruntime lacks (``doing`` times it there)."""
    if target not in TARGETS:
        raise Invalid("provider", f"{target!r} is not an int8 target; one of {', '.join(TARGETS)}")
    if target != "cpu" and target not in runtime.available_providers():
        raise Invalid("provider", f"{doing} is timed on {target}, which this onnxruntime lacks (it has "
                                  f"{', '.join(runtime.available_providers())}): run this where "
                                  f"'shiftwatch[{FLAVOUR_OF[target]}]' is installed")  # fmt: skip
_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}


def sample_calibration(images: np.ndarray, seed: int, limit: int = MAX_CALIBRATION_IMAGES) -> np.ndarray:
    """A seeded subsample of at most ``limit`` images (all of them when fewer)."""
    if len(images) <= limit:
        return images
    rng = np.random.default_rng(seed)
    return images[np.sort(rng.choice(len(images), size=limit, replace=False))]


def graph_opset(model: onnx.ModelProto) -> int:
    """The version of the default (ai.onnx) operator set the graph imports."""
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 1)


def fused_operators(path: Path) -> list[str]:
    """ONNX Runtime's own fused operators in the graph (FusedConv, FusedGemm, ...): ORT's quantizer cannot read them."""
    model = onnx.load(str(path), load_external_data=False)
    return sorted({node.op_type for node in model.graph.node if node.domain == "com.microsoft"})


def prepare_graph(source: Path, target: Path) -> tuple[Path, str]:
    """``source`` at opset >= 13 (written to ``target`` when it had to be upgraded) and its one image input's name."""
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for a bad file
        raise Invalid("onnx", f"{source.name} is not a readable ONNX model: {str(exc).splitlines()[0]}") from None
    weights = {init.name for init in model.graph.initializer}
    inputs = [value.name for value in model.graph.input if value.name not in weights]
    if len(inputs) != 1:
        raise Invalid("onnx", f"int8 calibration feeds one image input; the graph has {len(inputs)}: {', '.join(inputs)}")
    opset = graph_opset(model)
    if opset >= MIN_OPSET:
        return source, inputs[0]
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as exc:  # noqa: BLE001 - the converter raises RuntimeError, ValidationError, ...
        raise Invalid("onnx", f"opset {opset} could not be upgraded to {MIN_OPSET} for int8 "
                              f"({str(exc).splitlines()[0]}); export the model at opset {MIN_OPSET} or later") from None  # fmt: skip
    onnx.save(upgraded, str(target))
    return target, inputs[0]


def quantize_int8(
    fp32_model: Path, target: Path, calibration_images: np.ndarray, config: QuantizeConfig | None = None
) -> Path:
    """Write a static int8 QDQ model of ``fp32_model`` (unoptimized export), fused for the CPU provider unless
    ``config.target`` names another (then the QDQ graph as it is).

    Activations are uint8 and weights int8 (the U8S8 pair ORT's x86 kernels are fastest on).
    The image input may have any name; a graph below opset 13 is upgraded first.
    """
    config = config or QuantizeConfig()
    if len(calibration_images) == 0:
        raise Invalid("calibration", "static quantization needs calibration images")
    if config.method not in _METHODS:
        raise Invalid("method", f"must be one of {', '.join(_METHODS)}")
    if config.target not in TARGETS:
        raise Invalid("provider", f"{config.target!r} is not an int8 target; one of {', '.join(TARGETS)}")
    sample = sample_calibration(calibration_images, config.seed)
    with tempfile.TemporaryDirectory(prefix="shiftwatch-ptq-") as tmp:
        source, input_name = prepare_graph(fp32_model, Path(tmp) / "upgraded.onnx")
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "qdq.onnx"
        # Shape inference + fusion first, as ORT's quantization guide asks.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            ImageCalibrationReader(sample, input_name=input_name),
            quant_format=QuantFormat.QDQ,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=_METHODS[config.method],
            nodes_to_exclude=[node.name for node in onnx.load(str(prepared)).graph.node if node.name.startswith(FLOAT_NODE_PREFIX)],
        )
        if config.target != "cpu":
            return Path(shutil.copyfile(quantized, target))
        return optimize_onnx(quantized, target)
