"""Bounds on the memory an ONNX artifact can make the server spend building its session (issue 27, item 3).

A 437-byte graph ``ConstantOfShape([N, N]) -> ReduceSum`` passes the ONNX checker, and ONNX
Runtime constant-folds it while building the session: N = 65,536 would allocate 16 GiB inside
the server. Two checks, at upload/registration and again before the gateway or a rollout opens a
session (cached by sha256, so each file is probed once per process):

1. shape inference: a ``ConstantOfShape``/``Expand``/``Tile``/... output, or a constant, whose
   inferred size passes ``MAX_TENSOR_ELEMENTS`` is refused by name;
2. the session is built and run once on zeros in a child process whose address space is capped:
   what inference cannot see (a shape computed through a ``Cast``) fails there, not in the server.
   (Under the cap ORT skips folding a constant it cannot allocate and computes it per run
   instead, so the run is what finds it.)
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from shiftwatch.errors import Invalid

# Ops whose output size is set by a value, not by their inputs' sizes: what a constant bomb uses.
EXPANDING_OPS = frozenset({"ConstantOfShape", "Expand", "Tile", "Range", "OneHot", "Resize", "Upsample", "Pad"})
# 2**24 values (64 MiB of float32): a 4096 x 4096 tensor. Weights past it are stored, not expanded.
MAX_TENSOR_ELEMENTS = 2**24
# What building a session may take in the child, over its idle size: 256 MiB plus 4x the file
# (ORT holds the parsed proto, the initializers and the optimised graph at once).
SESSION_SLACK_BYTES = 256 * 2**20
SESSION_FILE_FACTOR = 4
PROBE_TIMEOUT_S = 120.0

_probed: set[str] = set()
_probed_lock = threading.Lock()


def _dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def check_static_sizes(model: Any) -> None:
    """Refuse a graph whose inferred shapes show an expanding op (or a Constant) past ``MAX_TENSOR_ELEMENTS``."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - inference errors come in several types
        raise Invalid("artifact", f"fails ONNX shape inference: {str(exc).splitlines()[0][:300]}") from None
    graph = inferred.graph
    shapes = {vi.name: _dims(vi) for vi in [*graph.value_info, *graph.output]}
    for node in graph.node:
        if node.op_type not in EXPANDING_OPS and node.op_type != "Constant":
            continue
        for output in node.output:
            dims = shapes.get(output, [])
            known = math.prod(d for d in dims if d is not None)  # a lower bound where a dim is unknown
            if known > MAX_TENSOR_ELEMENTS:
                shown = "x".join("?" if d is None else str(d) for d in dims)
                raise Invalid(
                    "artifact",
                    f"node {node.name or output!r} ({node.op_type}) makes a {shown} tensor ({known:,} values) while "
                    f"the session is built; the limit is {MAX_TENSOR_ELEMENTS:,}",
                )


# Runs in the child: build the session under an address-space cap; print the peak growth (bytes).
_CHILD = r"""
import json, resource, sys
import onnxruntime as ort

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0

path, limit = sys.argv[1], int(sys.argv[2])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
options.log_severity_level = 4
resource.setrlimit(resource.RLIMIT_AS, (status("VmSize:") + limit, resource.RLIM_INFINITY))
base = status("VmRSS:")
DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
          "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}
try:
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    # ORT gives up folding a constant it cannot allocate and computes it per run instead: run once.
    import numpy as np
    feeds = {}
    for given in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in given.shape]
        if given.type not in DTYPES:
            feeds = None
            break
        feeds[given.name] = np.zeros(shape, dtype=DTYPES[given.type])
    if feeds is not None:
        session.run(None, feeds)
except BaseException as exc:
    text = f"{type(exc).__name__}: {str(exc)}"
    memory = isinstance(exc, MemoryError) or any(m in text for m in ("allocate", "bad_alloc", "length_error"))
    print(json.dumps({"error": text.splitlines()[0][:300], "memory": memory}))
    sys.exit(3)
print(json.dumps({"peak": status("VmHWM:") - base}))
"""


def session_limit(path: Path) -> int:
    """Bytes a session build for ``path`` may take over the child's idle size."""
    return SESSION_SLACK_BYTES + SESSION_FILE_FACTOR * path.stat().st_size


def probe_session(path: Path, *, timeout_s: float = PROBE_TIMEOUT_S) -> int:
    """Build and run the session in a child process capped at ``session_limit``; the peak it took, or ``Invalid``."""
    limit = session_limit(path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(limit)], capture_output=True,
                              text=True, timeout=timeout_s, env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise Invalid("artifact", f"building its ONNX Runtime session took over {timeout_s:.0f} s") from None
    lines = done.stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if answer.get("memory") is False:  # ORT refused the graph or a zero input for another reason:
        return 0  # not a bound's business (loading it for serving says why)
    if done.returncode != 0 or "peak" not in answer:
        why = answer.get("error") or (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:300]
        raise Invalid(
            "artifact",
            f"building its ONNX Runtime session failed within {limit // 2**20} MiB ({why}); a graph that "
            "expands constants while it loads is refused",
        )
    if answer["peak"] > limit:
        raise Invalid(
            "artifact",
            f"building its ONNX Runtime session took {answer['peak'] // 2**20} MiB, over {limit // 2**20} MiB",
        )
    return int(answer["peak"])


def bound_session(path: Path, sha256: str, model: Any = None) -> None:
    """Both checks for the artifact at ``path`` (hashing to ``sha256``), once per file per process."""
    with _probed_lock:
        if sha256 in _probed:
            return
    if model is None:
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises several types for garbage input
            raise Invalid("artifact", f"not an ONNX model ({type(exc).__name__})") from None
    check_static_sizes(model)
    probe_session(path)
    with _probed_lock:
        _probed.add(sha256)
