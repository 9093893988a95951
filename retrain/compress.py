"""Compose the compression steps (distill, prune, PTQ with QAT fallback) into one ONNX Runtime artifact.

Steps run in a fixed order whatever order they are named in: distillation first (the
student learns from the full teacher), then channel pruning of whatever model that left,
then export + parity, then int8 PTQ. When PTQ costs more than ``max_ptq_drop`` top-1 on
the evaluation set, quantization-aware fine-tuning runs and PTQ is repeated on its weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shiftwatch.errors import Invalid
from shiftwatch.retrain.distill import DistillConfig
from shiftwatch.retrain.export import ParityReport, check_parity, export_artifact
from shiftwatch.retrain.prune import PruneConfig
from shiftwatch.retrain.qat import QATConfig
from shiftwatch.retrain.quantize import QuantizeConfig, quantize_int8
from shiftwatch.retrain.runtime import OnnxClassifier

STEPS = ("distill", "prune", "qat", "ptq")  # run order
DEFAULT_STEPS = ("distill", "prune", "ptq")
# int8 rounding moves the digits CNN's logits by up to ~15% of their largest magnitude
# (measured: 4.1 of 30); a graph with wrong weights or scales moves them by far more, and
# breaks top-1 agreement, which must stay high.
QUANTIZED_ATOL = 0.5
QUANTIZED_RTOL = 0.25
QUANTIZED_MIN_AGREEMENT = 0.95

StepProgress = Callable[[str, int, int], None]  # (step, done, total)


def parse_steps(text: str | None) -> tuple[str, ...]:
    """``"ptq,prune"`` -> ("prune", "ptq") in run order; "" or "none" -> (); ``qat`` implies ``ptq``."""
    if text is None:
        return DEFAULT_STEPS
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = sorted(set(names) - set(STEPS))
    if unknown:
        raise Invalid("compress", f"unknown step {', '.join(unknown)}; known: {', '.join(STEPS)} (or none)")
    if "qat" in names:
        names.append("ptq")
    return tuple(step for step in STEPS if step in names)


@dataclass(frozen=True, slots=True)
class CompressConfig:
    steps: tuple[str, ...] = DEFAULT_STEPS
    distill: DistillConfig = field(default_factory=DistillConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    qat: QATConfig = field(default_factory=QATConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    # The most top-1 (a fraction: 0.01 = one point) PTQ may cost before QAT takes over.
    max_ptq_drop: float = 0.01


@dataclass(frozen=True, slots=True)
class CompressionResult:
    model: Any  # the final fp32 torch model (what the int8 artifact was quantized from)
    fp32_path: Path
    path: Path  # the artifact to deploy: int8 when PTQ ran, else fp32
    steps_applied: tuple[str, ...]
    parity: ParityReport
    quantized_parity: ParityReport | None
    details: dict[str, Any]


def onnx_accuracy(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    predicted = OnnxClassifier(path, "cpu").predict(images).predicted_class
    return float((predicted == labels).mean())


def compress(
    model: Any,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    eval_images: np.ndarray,
    eval_labels: np.ndarray,
    calibration_images: np.ndarray,
    workdir: Path,
    train_config: Any,
    config: CompressConfig | None = None,
    *,
    progress: StepProgress | None = None,
) -> CompressionResult:
    """Apply ``config.steps`` to ``model`` (left untouched) and write the artifacts under ``workdir``."""
    from shiftwatch.retrain.distill import distill, teacher_targets
    from shiftwatch.retrain.prune import prune_and_finetune
    from shiftwatch.retrain.qat import quantization_aware_finetune
    from shiftwatch.retrain.reference_model import model_from_state

    config = config or CompressConfig()
    report = progress or (lambda step, done, total: None)
    epochs = lambda step: (lambda done, total, loss: report(step, done, total))  # noqa: E731
    current = model_from_state(model.state_dict())  # a copy: the caller's model stays as it was
    applied: list[str] = []
    details: dict[str, Any] = {}
    teacher_logits = None
    if "distill" in config.steps:
        current = distill(current, train_images, train_labels, train_config, config.distill, progress=epochs("distill"))
        teacher_logits = teacher_targets(model, train_images)
        applied.append("distill")
        details["student_channels"] = list(current.channels)
    if "prune" in config.steps:
        current, pruned = prune_and_finetune(
            current, train_images, train_labels, train_config, config.prune,
            teacher_logits=teacher_logits, progress=epochs("prune"),
        )  # fmt: skip
        applied.append("prune")
        details["prune"] = {"channels_after": list(pruned.channels_after), "sparsity": round(pruned.sparsity, 4)}
    if "qat" in config.steps:
        current = quantization_aware_finetune(
            current, train_images, train_labels, train_config, config.qat, teacher_logits=teacher_logits, progress=epochs("qat")
        )
        applied.append("qat")
    report("export", 0, 1)
    exported = export_artifact(current, workdir, eval_images, name="fp32")
    report("export", 1, 1)
    result_path, quantized_parity = exported.path, None
    if "ptq" in config.steps:
        fp32_accuracy = onnx_accuracy(exported.path, eval_images, eval_labels)
        int8_path = quantize_int8(exported.raw_path, workdir / "int8.onnx", calibration_images, config.quantize)
        drop = fp32_accuracy - onnx_accuracy(int8_path, eval_images, eval_labels)
        details["ptq_accuracy_drop"] = round(drop, 4)
        if drop > config.max_ptq_drop and "qat" not in applied:
            current = quantization_aware_finetune(
                current, train_images, train_labels, train_config, config.qat, teacher_logits=teacher_logits, progress=epochs("qat")
            )
            applied.append("qat")
            exported = export_artifact(current, workdir, eval_images, name="fp32")
            int8_path = quantize_int8(exported.raw_path, workdir / "int8.onnx", calibration_images, config.quantize)
            details["qat_accuracy_drop"] = round(
                onnx_accuracy(exported.path, eval_images, eval_labels) - onnx_accuracy(int8_path, eval_images, eval_labels), 4
            )
        applied.append("ptq")
        quantized_parity = check_parity(
            current, int8_path, eval_images, atol=QUANTIZED_ATOL, rtol=QUANTIZED_RTOL, min_agreement=QUANTIZED_MIN_AGREEMENT
        )
        result_path = int8_path
        report("ptq", 1, 1)
    return CompressionResult(
        model=current,
        fp32_path=exported.path,
        path=result_path,
        steps_applied=tuple(applied),
        parity=exported.parity,
        quantized_parity=quantized_parity,
        details=details,
    )
