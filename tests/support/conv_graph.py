"""A small convolutional classifier built with onnx.helper (no torch), in the three forms a provider may get:
fp32, int8 QDQ as ORT's quantizer writes it, and that QDQ graph after ORT's CPU fusions (QLinearConv, QGemm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from shiftwatch.retrain.export import optimize_onnx

SHAPE = (1, 16, 16)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, *SHAPE)).astype(np.float32)


def build_fp32(path: Path) -> Path:
    """image [n,1,16,16] -> Conv 8x3x3 + Relu -> GlobalAveragePool -> Flatten (``embedding``, 8-d) -> Gemm (``logits``, 4)."""
    rng = np.random.default_rng(0)
    weights = {
        "conv_w": rng.normal(0, 0.5, (8, 1, 3, 3)), "conv_b": rng.normal(0, 0.1, 8),
        "fc_w": rng.normal(0, 1.0, (4, 8)), "fc_b": rng.normal(0, 0.1, 4),
    }  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["act"]),
        helper.make_node("GlobalAveragePool", ["act"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["embedding"], axis=1),
        helper.make_node("Gemm", ["embedding", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "conv_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", *SHAPE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 8])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


class _Calibration(CalibrationDataReader):
    def __init__(self) -> None:
        self.batches = iter([{"image": images(16, seed)} for seed in range(4)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def build_all(folder: Path) -> dict[str, Path]:
    """{"fp32", "int8_qdq", "int8_fused"} model files in ``folder``."""
    fp32 = build_fp32(folder / "fp32.onnx")
    qdq = folder / "int8_qdq.onnx"
    quantize_static(str(fp32), str(qdq), _Calibration(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return {"fp32": fp32, "int8_qdq": qdq, "int8_fused": optimize_onnx(qdq, folder / "int8_fused.onnx")}
