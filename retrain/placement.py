"""Where an ONNX Runtime session's nodes actually ran, read from ORT's own per-node profile.

``session.get_providers()`` lists what was registered, not what took the graph: a GPU build on a
host without CUDA drops the GPU provider with a log line and runs everything on the CPU
(microsoft/onnxruntime#17394), and the OpenVINO provider leaves fused int8 operators (QLinearConv,
QGemm) to the CPU provider while still being listed. Only the profile says where each node ran.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftwatch.errors import Invalid
from shiftwatch.retrain.ort import onnxruntime as ort

CPU = "CPUExecutionProvider"
# Operators that carry a model's compute: one of these left on the CPU means the accelerator did not
# take the graph, whatever else it ran (shape and cast nodes on the CPU are normal).
HEAVY_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv", "FusedConv", "NhwcConv", "Gemm", "QGemm", "FusedGemm",
                       "MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul", "DynamicQuantizeMatMul"})


@dataclass(frozen=True, slots=True)
class Placement:
    """How many nodes of one run each provider executed, and which operator types."""

    nodes: dict[str, int]
    ops: dict[str, tuple[str, ...]]

    def describe(self) -> str:
        """'OpenVINOExecutionProvider: 2 nodes; CPUExecutionProvider: 14 nodes (QLinearConv, QGemm)'."""
        return "; ".join(f"{provider}: {count} nodes ({', '.join(self.ops[provider])})"
                         for provider, count in sorted(self.nodes.items(), key=lambda item: -item[1]))

    def heavy_on(self, provider: str) -> tuple[str, ...]:
        return tuple(op for op in self.ops.get(provider, ()) if op in HEAVY_OPS)


def from_profile(events: list[dict]) -> Placement:
    """The placement recorded in an ORT profile (the JSON list ``end_profiling`` writes)."""
    nodes: Counter[str] = Counter()
    ops: dict[str, set[str]] = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") != "Node" or "provider" not in args or not event.get("name", "").endswith("_kernel_time"):
            continue
        nodes[args["provider"]] += 1
        ops.setdefault(args["provider"], set()).add(args.get("op_name", "?"))
    return Placement(dict(nodes), {provider: tuple(sorted(names)) for provider, names in ops.items()})


def profiled_options(options: ort.SessionOptions, folder: Path) -> ort.SessionOptions:
    """``options`` with profiling on, its file under ``folder`` (profiling stops at ``end_profiling``)."""
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / "placement")
    return options


def measure(session: ort.InferenceSession, sample: np.ndarray) -> Placement:
    """Run ``sample`` once through a session created with ``profiled_options`` and read where nodes ran."""
    session.run(None, {session.get_inputs()[0].name: sample})
    profile = Path(session.end_profiling())
    try:
        return from_profile(json.loads(profile.read_text()))
    finally:
        profile.unlink(missing_ok=True)


def require(placement: Placement, requested: list[str], registered: list[str], artifact: str) -> None:
    """Refuse a session where an accelerator that was asked for did not take the graph, naming what ran where."""
    wanted = [provider for provider in requested if provider != CPU]
    if not wanted:
        return
    dropped = [provider for provider in wanted if provider not in registered]
    if dropped:
        raise Invalid("providers", f"{', '.join(dropped)} was asked for but onnxruntime could not start it here "
                                   f"(its libraries or device are missing; see onnxruntime's log above): "
                                   f"{artifact} would run as {placement.describe()}")
    if not any(placement.nodes.get(provider) for provider in wanted):
        raise Invalid("providers", f"{', '.join(wanted)} took none of {artifact}'s nodes: {placement.describe()}")
    if heavy := placement.heavy_on(CPU):
        raise Invalid("providers", f"{', '.join(wanted)} left {', '.join(heavy)} of {artifact} to the CPU "
                                   f"({placement.describe()}); for int8 on OpenVINO or TensorRT register the "
                                   f"unfused QDQ graph, or ask for providers='cpu'")


def scratch_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="shiftwatch-placement-")
