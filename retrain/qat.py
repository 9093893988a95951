"""Quantization-aware fine-tuning: the fallback when static PTQ loses more accuracy than allowed.

The model trains with int8 rounding simulated in its forward pass (``fake_quant.py``: weights
per-channel symmetric, activations per-tensor uint8 with moving-average ranges, straight-through
gradients), so its weights settle where rounding hurts least. Nothing here knows the layers: every
contract model goes through the same code. The result is still the plain
fp32 model: ORT's static PTQ then quantizes it exactly as before, with the same QDQ graph,
kernels and calibration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
from torch import nn

from shiftwatch.retrain.fake_quant import fake_quantized
from shiftwatch.retrain.trainer import ProgressCallback, TrainConfig, fit

Model = TypeVar("Model", bound=nn.Module)


@dataclass(frozen=True, slots=True)
class QATConfig:
    epochs: int = 3
    lr: float = 5e-4


def quantization_aware_finetune(
    model: Model,
    images: np.ndarray,
    labels: np.ndarray,
    train: TrainConfig,
    config: QATConfig | None = None,
    *,
    teacher_logits: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> Model:
    """Fine-tune ``model`` (returning (logits, embedding)) in place under simulated int8 with ``fit``; return it in eval mode.

    Its ``state_dict`` keys, shapes and parameter objects are those it came with (fp32, ready for PTQ).
    """
    config = config or QATConfig()
    with fake_quantized(model):
        fit(model, images, labels, replace(train, epochs=config.epochs, lr=config.lr), teacher_logits=teacher_logits,
            progress=progress)  # fmt: skip
    model.eval()
    return model
