"""ONNX Runtime inference for classifier artifacts: logits, embeddings and probabilities.

This is the one way shiftwatch runs a model (the rollout gateway imports ``OnnxClassifier``).
No torch here. Execution providers are picked by short name among those this onnxruntime
build offers; CPU is always the last fallback, so a graph node a GPU provider cannot run
still runs. A provider named explicitly must then take the graph (``placement.require``):
a CUDA build without CUDA, or OpenVINO leaving int8 convolutions to the CPU, is an error
that names what ran where, not a quiet CPU run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftwatch.errors import Invalid, NotFound
from shiftwatch.retrain import placement
from shiftwatch.retrain.ort import onnxruntime as ort

log = logging.getLogger(__name__)

INPUT_NAME = "image"
LOGITS = "logits"
EMBEDDING = "embedding"

_state = ort.capi.onnxruntime_pybind11_state
# What InferenceSession raises for a file that is not a usable model (they derive from Exception only).
_ORT_LOAD_ERRORS = (_state.Fail, _state.InvalidGraph, _state.InvalidArgument, _state.InvalidProtobuf, _state.NoSuchFile)

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
# "auto" tries these in order: compiled engines first, then plain GPU, then Intel CPU kernels (on Intel CPUs).
AUTO_ORDER = ("tensorrt", "cuda", "openvino", "cpu")


def available_providers() -> list[str]:
    """Short names of the providers this onnxruntime build can use here."""
    offered = set(ort.get_available_providers())
    return [alias for alias, full in PROVIDER_ALIASES.items() if full in offered]


def intel_cpu() -> bool:
    """Whether this host's CPU is Intel's: ``auto`` picks OpenVINO only there (its kernels are tuned for them)."""
    try:
        return "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def resolve_providers(requested: str | Sequence[str] | None = None) -> list[str]:
    """Full provider names for ``requested`` ("cpu", "cuda,cpu", ["tensorrt"], "auto", None = cpu).

    Asking for a provider this build lacks is an error, not a silent CPU run: a benchmark or
    a rollout that believes it runs on a GPU must not quietly measure the CPU.
    """
    if requested is None:
        names = ["cpu"]
    elif isinstance(requested, str):
        names = [part.strip().lower() for part in requested.split(",") if part.strip()]
    else:
        names = [str(part).strip().lower() for part in requested]
    here = available_providers()
    if names == ["auto"]:
        names = [name for name in AUTO_ORDER if name in here and (name != "openvino" or intel_cpu())]
    unknown = [name for name in names if name not in PROVIDER_ALIASES]
    if unknown:
        raise Invalid("providers", f"unknown {', '.join(unknown)}; known: {', '.join(PROVIDER_ALIASES)}, auto")
    missing = [name for name in names if name not in here]
    if missing:
        raise Invalid("providers", f"{', '.join(missing)} not available in this onnxruntime; available: {', '.join(here)}")
    if "cpu" not in names:
        names.append("cpu")
    return [PROVIDER_ALIASES[name] for name in dict.fromkeys(names)]


@dataclass(frozen=True, slots=True)
class ClassifierOutput:
    """One batch's outputs, float32: logits (N, C), embeddings (N, D), probabilities (N, C)."""

    logits: np.ndarray
    embeddings: np.ndarray
    probabilities: np.ndarray

    @property
    def predicted_class(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


class OnnxClassifier:
    """An ONNX classifier with a ``logits`` and an ``embedding`` output, in one ORT session.

    ``threads`` caps intra-op threads (None: ORT's default, all cores). Sessions are safe to
    call from several threads at once (ORT's ``run`` is thread-safe).
    """

    def __init__(
        self,
        path: str | Path,
        providers: str | Sequence[str] | None = None,
        *,
        threads: int | None = None,
        optimization: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise NotFound(f"model artifact {self.path} does not exist")
        options = ort.SessionOptions()
        options.graph_optimization_level = optimization
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        requested = resolve_providers(providers)
        self.placement: placement.Placement | None = None
        with placement.scratch_folder() as folder:
            accelerated = requested != [placement.CPU]  # CPU alone: nothing to check, no profiling run
            if accelerated:
                options = placement.profiled_options(options, Path(folder))
            try:
                self.session = ort.InferenceSession(str(self.path), options, providers=requested)
            except _ORT_LOAD_ERRORS as exc:
                raise Invalid("artifact", f"{self.path.name} is not a loadable ONNX model: {str(exc).splitlines()[0]}") from None
            self._read_signature()
            if accelerated:
                self._check_placement(requested, auto=_is_auto(providers))

    def _read_signature(self) -> None:
        inputs = self.session.get_inputs()
        outputs = [out.name for out in self.session.get_outputs()]
        if len(inputs) != 1 or LOGITS not in outputs or EMBEDDING not in outputs:
            raise Invalid("artifact", f"needs one input and outputs '{LOGITS}' and '{EMBEDDING}', has {outputs}")
        self.input_name = inputs[0].name
        # Fixed dims of the input (None where dynamic), e.g. [None, 1, 32, 32].
        self.input_shape = [dim if isinstance(dim, int) else None for dim in inputs[0].shape]
        shapes = {out.name: out.shape for out in self.session.get_outputs()}
        self.num_classes = _fixed(shapes[LOGITS][-1])
        self.embedding_dim = _fixed(shapes[EMBEDDING][-1])

    def _check_placement(self, requested: list[str], *, auto: bool) -> None:
        """Run one zero batch under ORT's profiler; refuse an accelerator that was named but did not take the graph.

        With ``auto`` the placement is only logged: auto promises the best provider that runs here, not a GPU.
        """
        sample = np.zeros([dim or 1 for dim in self.input_shape], dtype=np.float32)
        self.placement = placement.measure(self.session, sample)
        if auto:
            fell_back = self.placement.heavy_on(placement.CPU) and requested[0] != placement.CPU
            (log.warning if fell_back else log.info)("%s runs as %s", self.path.name, self.placement.describe())
        else:
            placement.require(self.placement, requested, self.session.get_providers(), self.path.name)

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def run(self, images: np.ndarray) -> ClassifierOutput:
        """Run one batch (N, *input shape) of float32 images."""
        batch = np.ascontiguousarray(images, dtype=np.float32)
        expected = self.input_shape[1:]
        if batch.ndim != len(self.input_shape) or any(
            want is not None and got != want for want, got in zip(expected, batch.shape[1:])
        ):
            raise Invalid("images", f"expected shape (N, {', '.join(str(d) for d in expected)}), got {batch.shape}")
        logits, embeddings = self.session.run([LOGITS, EMBEDDING], {self.input_name: batch})
        logits = np.asarray(logits, dtype=np.float32)
        return ClassifierOutput(logits, np.asarray(embeddings, dtype=np.float32), softmax(logits))

    def predict(self, images: np.ndarray, batch_size: int = 256) -> ClassifierOutput:
        """Run any number of images in batches of ``batch_size``."""
        parts = [self.run(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
        if not parts:
            return self.run(images)
        return ClassifierOutput(
            np.concatenate([p.logits for p in parts]),
            np.concatenate([p.embeddings for p in parts]),
            np.concatenate([p.probabilities for p in parts]),
        )


def _is_auto(providers: str | Sequence[str] | None) -> bool:
    return isinstance(providers, str) and providers.strip().lower() == "auto"


def _fixed(dim: object) -> int | None:
    return dim if isinstance(dim, int) else None
