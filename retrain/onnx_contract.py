"""An ONNX file under the model contract: name its logits and embedding tensors, get the two outputs serving reads.

No torch. A user's graph rarely has outputs called ``logits`` and ``embedding``; ``adapt_onnx``
adds them (Identity for the logits, Flatten for the embedding tensor, any intermediate
one) without touching the rest of the graph, so PTQ, the gateway and shadow/canary work on
it as on any exported model. A graph that already has them (one shiftwatch wrote) is adapted
again without clashing names, and a graph whose named output is already a softmax
(``outputs="probabilities"``) gets ``logits = log(probabilities)``: softmax gives the model's
own probabilities back, so the gateway, confidence, uncertainty and harm read them unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from shiftwatch.detectors.bbsd import SUM_TOLERANCE
from shiftwatch.errors import Invalid
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.quantize import FLOAT_NODE_PREFIX, graph_opset
from shiftwatch.retrain.runtime import EMBEDDING, LOGITS, OnnxClassifier

OUTPUT_KINDS = ("logits", "probabilities")
# log(1e-30) = -69: a class the graph gives probability exactly 0 gets a finite logit far below the rest.
PROBABILITY_FLOOR = 1e-30
# Random probe rows: 8 rows of logits all landing in [0, 1] and summing to 1 by chance does not happen.
PROBE_ROWS = 8


def _tensor_names(graph: onnx.GraphProto) -> set[str]:
    """Every name taken in the graph: tensors, and node names (the adapter's nodes get fresh ones too)."""
    names = {out for node in graph.node for out in node.output} | {node.name for node in graph.node}
    return names | {i.name for i in graph.input} | {init.name for init in graph.initializer}


def _fresh(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... : a name no tensor of the graph has yet (and reserve it)."""
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    taken.add(name)
    return name


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename tensor ``old`` wherever the graph (and its subgraphs, which may read outer names) uses it."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
        for attribute in node.attribute:
            for sub in [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs:
                _rename_tensor(sub, old, new)
    for info in (*graph.output, *graph.value_info):
        if info.name == old:
            info.name = new


def _drop_dead_nodes(graph: onnx.GraphProto) -> None:
    """Remove nodes nothing reads (an earlier adaptation's outputs once replaced), until none is left."""
    while True:
        read = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
        for node in graph.node:  # subgraphs may read outer names
            for attribute in node.attribute:
                for sub in [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs:
                    read |= {name for inner in sub.node for name in inner.input}
        dead = [node for node in graph.node if not any(name in read for name in node.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def _logits_nodes(model: onnx.ModelProto, source: str, target: str, kind: str, taken: set[str]) -> list[onnx.NodeProto]:
    """Nodes turning ``source`` into the ``target`` logits: Identity, or log of the floored probabilities."""
    if kind == "logits":
        return [helper.make_node("Identity", [source], [target], name=_fresh(f"{FLOAT_NODE_PREFIX}logits", taken))]
    for node in model.graph.node:  # the softmax itself stays float in int8: probabilities are not rounded to 1/255
        if source in node.output and not node.name.startswith(FLOAT_NODE_PREFIX):
            node.name = _fresh(f"{FLOAT_NODE_PREFIX}{node.name or node.op_type}", taken)
    floored = _fresh("sw_probabilities_floored", taken)
    clip_name = _fresh(f"{FLOAT_NODE_PREFIX}probability_floor", taken)
    if graph_opset(model) >= 11:  # Clip takes its bounds as inputs from opset 11, as attributes before
        floor = _fresh("sw_probability_floor", taken)
        model.graph.initializer.append(numpy_helper.from_array(np.array(PROBABILITY_FLOOR, np.float32), floor))
        clip = helper.make_node("Clip", [source, floor], [floored], name=clip_name)
    else:
        clip = helper.make_node("Clip", [source], [floored], name=clip_name, min=PROBABILITY_FLOOR)
    return [clip, helper.make_node("Log", [floored], [target], name=_fresh(f"{FLOAT_NODE_PREFIX}log_probabilities", taken))]


def _fixed_dims(value: onnx.ValueInfoProto) -> list[int | None]:
    return [dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim]


def _channels_last_input(graph: onnx.GraphProto, shape: tuple[int, ...]) -> onnx.ValueInfoProto | None:
    """The image input when it is (N, H, W, C) where ``shape`` is (C, H, W) and it cannot be (N, C, H, W); else None.

    Only fixed dimensions decide: an input whose dimensions are all dynamic is taken as channels-first.
    """
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    if len(inputs) != 1 or len(shape) != 3 or len(_fixed_dims(inputs[0])) != 4:
        return None
    dims = _fixed_dims(inputs[0])[1:]

    def fits(order: tuple[int, ...]) -> bool:
        return all(d is None or d == want for d, want in zip(dims, order))

    channels, height, width = shape
    return inputs[0] if fits((height, width, channels)) and not fits((channels, height, width)) else None


def _take_channels_first(graph: onnx.GraphProto, image: onnx.ValueInfoProto, shape: tuple[int, ...], taken: set[str]) -> None:
    """Feed a channels-last graph (N, C, H, W) images through a Transpose, so every caller sends one layout."""
    inner = _fresh(f"{image.name}_channels_last", taken)
    _rename_tensor(graph, image.name, inner)
    graph.node.insert(0, helper.make_node("Transpose", [image.name], [inner], perm=[0, 2, 3, 1],
                                          name=_fresh(f"{FLOAT_NODE_PREFIX}channels_last", taken)))  # fmt: skip
    batch = image.type.tensor_type.shape.dim[0]
    dims = [batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "batch"), *shape]
    image.CopyFrom(helper.make_tensor_value_info(image.name, image.type.tensor_type.elem_type, dims))


def last_linear_input(graph: onnx.GraphProto, output: str) -> str | None:
    """The input of the last Gemm/MatMul with constant weights on the way to ``output``: the classifier head's features.

    The ONNX twin of the torch default (the input of the last ``nn.Linear``), found by walking producers back from
    the logits, so an exported classifier needs no tensor name looked up by hand.
    """
    producer = {out: node for node in graph.node for out in node.output}
    constants = {init.name for init in graph.initializer}
    seen: set[str] = set()
    frontier = [output]
    while frontier:
        name = frontier.pop(0)
        node = producer.get(name)
        if node is None or name in seen:
            continue
        seen.add(name)
        if node.op_type in ("Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in constants:
            return str(node.input[0])
        frontier.extend(node.input)
    return None


def _load(source: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(source))
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for a bad file
        raise Invalid("onnx", f"{source.name} is not a readable ONNX model: {str(exc).splitlines()[0]}") from None


def adapt_onnx(
    source: Path,
    target: Path,
    *,
    logits_output: str | None = None,
    embedding_output: str | None = None,
    outputs: str = "logits",
    input_shape: tuple[int, ...] | None = None,
) -> Path:
    """Write ``source`` with outputs ``logits`` and ``embedding`` to ``target``.

    ``logits_output`` defaults to the graph's ``logits`` output, else its first output;
    ``outputs`` says what that tensor holds (``logits`` or ``probabilities``).
    ``embedding_output`` defaults to the graph's ``embedding`` output, else the input of the last Gemm/MatMul
    with constant weights before the logits (:func:`last_linear_input`).
    ``input_shape`` (the declared (C, H, W)): a graph whose image input is (N, H, W, C) gets a
    Transpose in front, so it takes (N, C, H, W) like every other.
    """
    if outputs not in OUTPUT_KINDS:
        raise Invalid("outputs", f"must be one of {', '.join(OUTPUT_KINDS)}, not {outputs!r}")
    model = _load(source)
    graph = model.graph
    output_names = [out.name for out in graph.output]
    names = _tensor_names(graph)
    logits_source = logits_output or (LOGITS if LOGITS in output_names else (output_names[0] if output_names else None))
    if logits_source is None or logits_source not in names:
        raise Invalid("logits_output", f"{logits_source!r} is not a tensor of the graph; outputs: {', '.join(output_names)}")
    embedding_source = embedding_output or (
        EMBEDDING if EMBEDDING in output_names else last_linear_input(graph, logits_source)
    )
    if embedding_source is None:
        raise Invalid("embedding_output", "no Gemm/MatMul with constant weights leads to the logits: name the tensor "
                      "to log as the embedding (--embedding-output)")
    if embedding_source not in names:
        raise Invalid("embedding_output", f"{embedding_source!r} is not a tensor of the graph")
    wanted = {LOGITS: (logits_source, outputs == "logits"), EMBEDDING: (embedding_source, False)}
    kept = [out for out in graph.output if out.name not in wanted]
    added: list[onnx.NodeProto] = []
    for name, (source_name, ready) in wanted.items():
        if ready and source_name == name and name in output_names:
            continue  # already the output serving reads (a graph shiftwatch wrote, registered again)
        if name in names:  # an earlier adaptation's output, or a user tensor that happens to be called so
            renamed = _fresh(f"sw_previous_{name}", names)
            _rename_tensor(graph, name, renamed)
            logits_source = renamed if logits_source == name else logits_source
            embedding_source = renamed if embedding_source == name else embedding_source
            source_name = renamed if source_name == name else source_name
        if name == LOGITS:
            added += _logits_nodes(model, source_name, name, outputs, names)
        else:
            added.append(helper.make_node("Flatten", [source_name], [name], axis=1, name=_fresh(f"{FLOAT_NODE_PREFIX}embedding", names)))
    graph.node.extend(added)
    del graph.output[:]
    graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", f"{name}_size"]) for name in wanted)
    graph.output.extend(kept)
    _drop_dead_nodes(graph)
    channels_last = _channels_last_input(graph, input_shape) if input_shape else None
    if channels_last is not None and input_shape is not None:
        _take_channels_first(graph, channels_last, input_shape, names)
    target.write_bytes(model.SerializeToString())
    return target


def holds_probabilities(rows: np.ndarray) -> bool:
    """Every row in [0, 1] and summing to 1: a softmax already applied (detectors/bbsd's tolerance)."""
    return bool(rows.min() >= -1e-6 and rows.max() <= 1 + 1e-6 and np.abs(rows.sum(axis=1) - 1).max() <= SUM_TOLERANCE)


def validate_onnx(path: Path, spec: InputSpec, num_classes: int, seed: int = 0, *, outputs: str = "logits", logits_name: str = LOGITS) -> int:
    """Run a probe batch at the declared shape; returns the embedding size. Errors name what is wrong.

    A ``logits`` output that holds probabilities is refused: softmaxing it again caps the
    confidence (at 0.73 for 2 classes) and makes every sample look uncertain.
    """
    classifier = OnnxClassifier(path, "cpu")
    pixels = np.random.default_rng(seed).random((PROBE_ROWS, *spec.shape), dtype=np.float32)
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
    if outputs == "logits" and holds_probabilities(output.logits):
        raise Invalid("outputs", f"the logits output ({logits_name}) already holds probabilities (every probe row is in [0, 1] "
                                 "and sums to 1); register it with --outputs probabilities (Python: outputs=\"probabilities\") "
                                 "so it is not softmaxed twice")  # fmt: skip
    if outputs == "probabilities" and not holds_probabilities(np.exp(output.logits)):  # logits = log(the output)
        raise Invalid("outputs", f"--outputs probabilities, but the output ({logits_name}) is not probabilities (rows outside [0, 1] "
                                 "or not summing to 1); leave --outputs at logits")  # fmt: skip
    return int(output.embeddings.shape[1])
