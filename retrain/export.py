"""Export a torch classifier to ONNX (image -> logits, embedding), bake in ORT graph optimizations, check parity.

Every candidate reaches ONNX Runtime through ``export_artifact``: the parity check runs the
artifact against the eager torch model on real inputs and raises ``ParityError`` (which
stops the pipeline) when logits drift or top-1 answers disagree.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shiftwatch.errors import ShiftwatchError
from shiftwatch.retrain.ort import onnxruntime as ort
from shiftwatch.retrain.runtime import EMBEDDING, INPUT_NAME, LOGITS, OnnxClassifier

if TYPE_CHECKING:
    import torch

OPSET = 17
# fp32 export: ORT and torch differ by float reassociation only, ~1e-5 on these logits; 1e-3
# leaves room for fused kernels while a perturbed weight (>= 1e-2 here) is caught.
FP32_ATOL = 1e-3
OPTIMIZATION_LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    # Extended adds fusions (Conv+Relu, Gemm+Relu) that run on the CPU provider; layout
    # rewrites ("all") are left to load time because they depend on the host's CPU.
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
}


class ParityError(ShiftwatchError):
    """The ONNX artifact does not compute what the torch model computes."""


@dataclass(frozen=True, slots=True)
class ParityReport:
    samples: int
    max_abs_logit_diff: float
    max_abs_logit: float
    top1_agreement: float
    atol: float | None  # None: logit differences are reported, not judged (int8 artifacts)
    min_agreement: float

    @property
    def ok(self) -> bool:
        close = self.atol is None or self.max_abs_logit_diff <= self.atol
        return close and self.top1_agreement >= self.min_agreement

    def as_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "ok": self.ok}


def export_onnx(model: torch.nn.Module, path: Path, *, input_shape: tuple[int, ...] = (1, 32, 32), opset: int = OPSET) -> Path:
    """Write ``model`` (returning (logits, embedding)) as ONNX with a dynamic batch axis."""
    import torch

    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros((2, *input_shape), dtype=torch.float32)
    batch_axis = {0: "batch"}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo=True, which takes ~10 s
        # per export of this CNN against ~0.2 s here and produces the same graph; the tests
        # and the pipeline export many times.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[LOGITS, EMBEDDING],
            dynamic_axes={INPUT_NAME: batch_axis, LOGITS: batch_axis, EMBEDDING: batch_axis},
            opset_version=opset,
            do_constant_folding=True,
        )
    return path


def optimize_onnx(source: Path, target: Path, level: str = "extended") -> Path:
    """Save ORT's optimized graph of ``source`` to ``target`` (SessionOptions.optimized_model_filepath)."""
    if level not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization level must be one of {', '.join(OPTIMIZATION_LEVELS)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = OPTIMIZATION_LEVELS[level]
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return target


def check_parity(
    model: torch.nn.Module,
    artifact: Path,
    images: np.ndarray,
    *,
    atol: float | None = FP32_ATOL,
    min_agreement: float = 1.0,
    raise_on_failure: bool = True,
) -> ParityReport:
    """Compare the artifact's logits with the eager torch model's on ``images``.

    The check passes when max |logit diff| <= ``atol`` and top-1 agreement >= ``min_agreement``.
    fp32 exports must agree on every answer within 1e-3. For int8 artifacts the caller passes
    ``atol=None``: saturated activations can move a winning logit by several units without
    changing any answer, so only the answers are judged (and the difference reported).
    """
    from shiftwatch.retrain.trainer import predict

    if len(images) == 0:
        raise ParityError("parity check needs at least one real input")
    torch_logits, _ = predict(model, images)
    onnx_logits = OnnxClassifier(artifact, "cpu").predict(images).logits
    report = ParityReport(
        samples=len(images),
        max_abs_logit_diff=float(np.abs(torch_logits - onnx_logits).max()),
        max_abs_logit=float(np.abs(torch_logits).max()),
        top1_agreement=float((torch_logits.argmax(1) == onnx_logits.argmax(1)).mean()),
        atol=atol,
        min_agreement=min_agreement,
    )
    if raise_on_failure and not report.ok:
        raise ParityError(
            f"parity check failed for {artifact.name}: max |logit diff| {report.max_abs_logit_diff:.3g} "
            f"(allowed {'any' if atol is None else f'{atol:g}'}), top-1 agreement {report.top1_agreement:.3f} "
            f"(needed {min_agreement:g}) "
            f"on {report.samples} inputs"
        )
    return report


@dataclass(frozen=True, slots=True)
class ExportResult:
    raw_path: Path
    path: Path
    parity: ParityReport


def export_artifact(
    model: torch.nn.Module, directory: Path, images: np.ndarray, *, name: str = "model", level: str = "extended"
) -> ExportResult:
    """Export, optimize and parity-check in one step: the fp32 artifact every other step starts from.

    The input shape is the evaluation images' own (digits 1x32x32, a contract model its ``input_spec``).
    """
    raw = export_onnx(model, directory / f"{name}.raw.onnx", input_shape=tuple(images.shape[1:]))
    optimized = optimize_onnx(raw, directory / f"{name}.onnx", level)
    return ExportResult(raw_path=raw, path=optimized, parity=check_parity(model, optimized, images))
