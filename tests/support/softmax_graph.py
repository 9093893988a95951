"""An ONNX-only model nobody on the project wrote: a colour classifier whose graph ends in a Softmax.

Built with onnx.helper, no torch: input ``pixels`` (not ``image``) [N, 3, 12, 12], opset 11
(below the 13 int8 needs), the class is the dominant colour channel (red, green, blue) and
the graph's one output ``prob`` is already probabilities, as many exported classifiers are.
The embedding to log is the hidden ReLU layer ``hidden`` (8-d).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

CLASS_NAMES = ["red", "green", "blue"]
SIDE = 12
INPUT_SPEC = {"shape": [3, SIDE, SIDE]}
OPSET = 11


def build(path: Path, *, softmax: bool = True, opset: int = OPSET, channels_last: bool = False) -> Path:
    """pixels -> GlobalAveragePool -> Flatten -> Gemm+Relu (``hidden``) -> Gemm -> Softmax (``prob``).

    ``channels_last``: the input is (N, H, W, 3), as TensorFlow and Keras exports take it (ReduceMean pools it).
    """
    rng = np.random.default_rng(0)
    # Hidden units 0-2 are the channel means x 8; 3-7 mix them (drift shows in them too).
    w1 = np.concatenate([np.eye(3) * 8.0, rng.normal(0, 2.0, (3, 5))], axis=1).astype(np.float32)
    b1 = np.concatenate([np.zeros(3), rng.normal(0, 0.5, 5)]).astype(np.float32)
    w2 = np.concatenate([np.eye(3), rng.normal(0, 0.01, (5, 3))]).astype(np.float32)
    pool = (helper.make_node("ReduceMean", ["pixels"], ["pooled"], axes=[1, 2]) if channels_last
            else helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]))  # fmt: skip
    nodes = [
        pool,
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "w1", "b1"], ["pre_hidden"]),
        helper.make_node("Relu", ["pre_hidden"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], ["scores" if softmax else "prob"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["scores"], ["prob"], axis=1))
    graph = helper.make_graph(
        nodes, "colour_classifier",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", SIDE, SIDE, 3] if channels_last else ["n", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(np.zeros(3, np.float32), "b2")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def render(seed: int, n: int, cast: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 16, 16, 3), labels): a dominant channel over noise; ``cast`` adds red to everything (the drift)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    base = rng.uniform(0.05, 0.35, (n, 1, 1, 3))
    base[np.arange(n), 0, 0, labels] += rng.uniform(0.3, 0.6, n)
    images = base + rng.normal(0, 0.04, (n, 16, 16, 3))
    images[..., 0] += cast
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8), labels.astype(np.int64)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
