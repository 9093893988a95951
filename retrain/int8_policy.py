"""Choose the int8 artifact, or decline it: PTQ, then QAT when PTQ is not good enough, then fp32.

Float results of training differ between CPUs (oneDNN and MKL pick other kernels on AVX2
and AVX-512), so a recipe that quantizes cleanly on one machine can miss the agreement bar
on the next. A miss is therefore not an error: the run tries the next, less aggressive
recipe and records every attempt, and the evaluation gate judges whatever ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shiftwatch.retrain.export import ExportResult, ParityReport, check_parity
from shiftwatch.retrain.quantize import QuantizeConfig, quantize_int8

Accuracy = Callable[[Path], float]


@dataclass(frozen=True, slots=True)
class Int8Attempt:
    recipe: str  # "ptq" or "qat+ptq"
    accuracy_drop: float  # fp32 ONNX top-1 minus int8 top-1 on the evaluation set
    parity: ParityReport

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "accuracy_drop": round(self.accuracy_drop, 4),
            "top1_agreement": round(self.parity.top1_agreement, 4),
            "parity_ok": self.parity.ok,
        }


@dataclass(frozen=True, slots=True)
class Int8Choice:
    model: Any  # the fp32 torch model the shipped artifact comes from
    exported: ExportResult
    int8_path: Path | None  # None: int8 was declined and the fp32 artifact ships
    parity: ParityReport | None  # of the shipped int8 artifact
    attempts: tuple[Int8Attempt, ...]
    qat_applied: bool

    @property
    def outcome(self) -> str:
        if self.int8_path is not None:
            return f"int8 from {self.attempts[-1].recipe}"
        tried = " and ".join(
            f"{a.recipe} (top-1 agreement {a.parity.top1_agreement:.3f}, needed {a.parity.min_agreement:g}; "
            f"{100 * a.accuracy_drop:.1f} points lost)"
            for a in self.attempts
        )
        return f"fp32: int8 declined after {tried}"

    def details(self) -> dict[str, Any]:
        return {"attempts": [attempt.as_dict() for attempt in self.attempts], "outcome": self.outcome}


def attempt_int8(
    recipe: str,
    model: Any,
    exported: ExportResult,
    target: Path,
    eval_images: np.ndarray,
    calibration_images: np.ndarray,
    accuracy: Accuracy,
    config: QuantizeConfig,
    min_agreement: float,
) -> Int8Attempt:
    """Quantize ``exported`` and judge it: its accuracy cost and its answers against ``model``."""
    quantize_int8(exported.raw_path, target, calibration_images, config)
    parity = check_parity(model, target, eval_images, atol=None, min_agreement=min_agreement, raise_on_failure=False)
    return Int8Attempt(recipe, accuracy(exported.path) - accuracy(target), parity)


def choose_int8(
    model: Any,
    exported: ExportResult,
    workdir: Path,
    eval_images: np.ndarray,
    calibration_images: np.ndarray,
    accuracy: Accuracy,
    *,
    config: QuantizeConfig,
    max_drop: float,
    min_agreement: float,
    qat_applied: bool,
    retrain_with_qat: Callable[[Any], tuple[Any, ExportResult]] | None,
) -> Int8Choice:
    """PTQ; when it costs more than ``max_drop`` or misses ``min_agreement``, QAT then PTQ again;
    when the answers still disagree too often, keep the fp32 artifact of the pre-QAT model.
    ``retrain_with_qat=None`` (a model family without QAT) goes from a missed PTQ straight to fp32."""
    target = workdir / "int8.onnx"
    first = attempt_int8("qat+ptq" if qat_applied else "ptq", model, exported, target, eval_images,
                         calibration_images, accuracy, config, min_agreement)  # fmt: skip
    attempts = [first]
    if first.parity.ok and (first.accuracy_drop <= max_drop or qat_applied):
        return Int8Choice(model, exported, target, first.parity, tuple(attempts), qat_applied)
    if not qat_applied and retrain_with_qat is not None:
        qat_model, qat_exported = retrain_with_qat(model)
        second = attempt_int8("qat+ptq", qat_model, qat_exported, target, eval_images, calibration_images,
                              accuracy, config, min_agreement)  # fmt: skip
        attempts.append(second)
        if second.parity.ok:
            return Int8Choice(qat_model, qat_exported, target, second.parity, tuple(attempts), True)
    target.unlink(missing_ok=True)
    return Int8Choice(model, exported, None, None, tuple(attempts), qat_applied)
