"""An ONNX file under the model contract: name its logits and embedding tensors, get the two outputs serving reads.

No torch. A user's graph rarely has outputs called ``logits`` and ``embedding``; ``adapt_onnx``
adds them (Identity for the logits, Flatten for the embedding tensor, any intermediate
one) without touching the rest of the graph, so PTQ, the gateway and shadow/canary work on
it as on any exported model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from shiftwatch.errors import Invalid
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.runtime import EMBEDDING, LOGITS, OnnxClassifier


def _tensor_names(graph: onnx.GraphProto) -> set[str]:
    names = {out for node in graph.node for out in node.output}
    return names | {i.name for i in graph.input}


def adapt_onnx(source: Path, target: Path, *, logits_output: str | None = None, embedding_output: str | None = None) -> Path:
    """Write ``source`` with outputs ``logits`` and ``embedding`` to ``target``.

    ``logits_output`` defaults to the graph's first output; ``embedding_output`` must name a
    tensor of the graph unless it already has an ``embedding`` output.
    """
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for a bad file
        raise Invalid("onnx", f"{source.name} is not a readable ONNX model: {str(exc).splitlines()[0]}") from None
    graph = model.graph
    outputs = [out.name for out in graph.output]
    if LOGITS in outputs and EMBEDDING in outputs and logits_output is None and embedding_output is None:
        target.write_bytes(model.SerializeToString())
        return target
    names = _tensor_names(graph)
    logits_source = logits_output or (outputs[0] if outputs else None)
    embedding_source = embedding_output or (EMBEDDING if EMBEDDING in outputs else None)
    if logits_source is None or logits_source not in names:
        raise Invalid("logits_output", f"{logits_source!r} is not a tensor of the graph; outputs: {', '.join(outputs)}")
    if embedding_source is None:
        raise Invalid("embedding_output", "name the tensor to log as the embedding (e.g. the input of the last Gemm/MatMul)")
    if embedding_source not in names:
        raise Invalid("embedding_output", f"{embedding_source!r} is not a tensor of the graph")
    kept = [out for out in graph.output if out.name not in (LOGITS, EMBEDDING)]
    del graph.output[:]
    for name, node in ((LOGITS, helper.make_node("Identity", [logits_source], ["sw_logits"])),
                       (EMBEDDING, helper.make_node("Flatten", [embedding_source], ["sw_embedding"], axis=1))):  # fmt: skip
        graph.node.append(node)
        graph.node.append(helper.make_node("Identity", [node.output[0]], [name]))
        graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", f"{name}_size"]))
    graph.output.extend(kept)
    target.write_bytes(model.SerializeToString())
    return target


def validate_onnx(path: Path, spec: InputSpec, num_classes: int, seed: int = 0) -> int:
    """Run a probe batch at the declared shape; returns the embedding size. Errors name what is wrong."""
    classifier = OnnxClassifier(path, "cpu")
    pixels = np.random.default_rng(seed).random((2, *spec.shape), dtype=np.float32)
    try:
        output = classifier.run(spec.normalise(pixels))
    except Invalid:
        raise Invalid("input_spec.shape", f"the graph does not take {list(spec.shape)} inputs (it takes {classifier.input_shape})") from None
    except Exception as exc:  # noqa: BLE001 - ORT's runtime errors
        raise Invalid("onnx", f"fails on a probe input: {str(exc).splitlines()[0]}") from None
    if output.logits.ndim != 2 or output.logits.shape[1] != num_classes:
        raise Invalid("onnx", f"logits have shape {list(output.logits.shape)}; expected [N, {num_classes}] for {num_classes} classes")
    if not (np.isfinite(output.logits).all() and np.isfinite(output.embeddings).all()):
        raise Invalid("onnx", "returns non-finite logits or embedding on a probe input")
    return int(output.embeddings.shape[1])
