"""Compose the compression steps (distill, prune, PTQ with QAT fallback) into one ONNX Runtime artifact.

Steps run in a fixed order whatever order they are named in: distillation first (the
student learns from the full teacher), then channel pruning of whatever model that left,
then export + parity, then int8 PTQ. When PTQ costs more than ``max_ptq_drop`` top-1 on
the evaluation set or misses the agreement bar, quantization-aware fine-tuning runs and PTQ
is repeated on its weights; when that still disagrees, the fp32 artifact ships
(``int8_policy``), and ``details["quantization"]`` says which and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shiftwatch.errors import Invalid
from shiftwatch.retrain.contract_family import ContractFamily, DistillConfig, PruneConfig, teacher_targets
from shiftwatch.retrain.export import ExportResult, ParityReport, export_artifact
from shiftwatch.retrain.int8_policy import choose_int8
from shiftwatch.retrain.qat import QATConfig
from shiftwatch.retrain.quantize import QUANTIZED_MIN_AGREEMENT, QuantizeConfig
from shiftwatch.retrain.runtime import OnnxClassifier
from shiftwatch.retrain.torch_contract import ContractModel
from shiftwatch.retrain.trainer import TrainConfig

STEPS = ("distill", "prune", "qat", "ptq")  # run order
DEFAULT_STEPS = ("distill", "prune", "ptq")

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
    # An int8 artifact must give the same top-1 as its fp32 model on this share of the
    # evaluation inputs, or it is declined (a graph with wrong weights or scales falls far below).
    quantized_min_agreement: float = QUANTIZED_MIN_AGREEMENT


@dataclass(frozen=True, slots=True)
class CompressionResult:
    model: ContractModel  # the final fp32 torch model (what the int8 artifact was quantized from)
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
    model: ContractModel,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    eval_images: np.ndarray,
    eval_labels: np.ndarray,
    calibration_images: np.ndarray,
    workdir: Path,
    train_config: TrainConfig,
    config: CompressConfig | None = None,
    *,
    family: ContractFamily,
    progress: StepProgress | None = None,
) -> CompressionResult:
    """Apply ``config.steps`` to ``model`` (left untouched) and write the artifacts under ``workdir``."""
    config = config or CompressConfig()
    report = progress or (lambda step, done, total: None)
    epochs = lambda step: (lambda done, total, loss: report(step, done, total))
    current = family.copy(model)  # the caller's model stays as it was
    applied: list[str] = []
    details: dict[str, Any] = {}
    teacher_logits = None
    if "distill" in config.steps:
        current, about = family.distill(current, train_images, train_labels, train_config, config.distill, progress=epochs("distill"))
        teacher_logits = teacher_targets(model, train_images)
        applied.append("distill")
        details.update(about)
    if "prune" in config.steps:
        current, about = family.prune(
            current, train_images, train_labels, train_config, config.prune,
            teacher_logits=teacher_logits, progress=epochs("prune"),
        )  # fmt: skip
        applied.append("prune")
        details.update(about)
    if "qat" in config.steps:
        current = family.qat(
            current, train_images, train_labels, train_config, config.qat, teacher_logits=teacher_logits, progress=epochs("qat")
        )
        applied.append("qat")
    report("export", 0, 1)
    exported = export_artifact(current, workdir, eval_images, name="fp32")
    report("export", 1, 1)
    result_path, quantized_parity = exported.path, None
    if "ptq" in config.steps:

        def retrain_with_qat(model: ContractModel) -> tuple[ContractModel, ExportResult]:
            qat_model = family.qat(  # on a copy: the pre-QAT model is the fp32 fallback
                family.copy(model), train_images, train_labels, train_config, config.qat, teacher_logits=teacher_logits,
                progress=epochs("qat"),
            )  # fmt: skip
            return qat_model, export_artifact(qat_model, workdir / "qat", eval_images, name="fp32")

        choice = choose_int8(
            current, exported, workdir, eval_images, calibration_images,
            lambda path: onnx_accuracy(path, eval_images, eval_labels),
            config=config.quantize, max_drop=config.max_ptq_drop, min_agreement=config.quantized_min_agreement,
            qat_applied="qat" in applied, retrain_with_qat=retrain_with_qat,
        )  # fmt: skip
        current, exported = choice.model, choice.exported
        details["quantization"] = choice.details()
        if choice.qat_applied and "qat" not in applied:
            applied.append("qat")
        if choice.int8_path is not None:
            applied.append("ptq")
            result_path, quantized_parity = choice.int8_path, choice.parity
        else:
            result_path = exported.path
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
