"""Quantization-aware fine-tuning: the fallback when static PTQ loses more accuracy than allowed.

The model trains with int8 rounding simulated in its forward pass (weights per-channel
symmetric int8, activations per-tensor uint8 with moving-average ranges, straight-through
gradients from ``torch.fake_quantize_*``), so its weights settle where rounding hurts least.
The result is still a plain fp32 ``DigitsCNN``: ORT's static PTQ then quantizes it exactly
as before, with the same QDQ graph, kernels and calibration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shiftwatch.retrain.reference_model import DigitsCNN, ProgressCallback, TrainConfig, fit

# Moving-average momentum of the activation ranges (PyTorch's MovingAverageMinMaxObserver default is 0.01;
# 0.1 settles within the few hundred steps of a short fine-tune).
RANGE_MOMENTUM = 0.1


@dataclass(frozen=True, slots=True)
class QATConfig:
    epochs: int = 3
    lr: float = 5e-4


def _fake_weight(weight: torch.Tensor) -> torch.Tensor:
    scale = weight.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-8) / 127.0
    zero = torch.zeros(weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -128, 127)


class FakeQuantDigitsCNN(nn.Module):
    """Wraps a ``DigitsCNN`` (sharing its parameters) and simulates int8 inference in ``forward``."""

    ranges: torch.Tensor  # buffers, registered below by name
    seen: torch.Tensor

    def __init__(self, model: DigitsCNN) -> None:
        super().__init__()
        self.model = model
        # Observed [min, max] of the input and of the five layer outputs ORT quantizes.
        self.register_buffer("ranges", torch.zeros(6, 2))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))

    def _fake_act(self, x: torch.Tensor, slot: int) -> torch.Tensor:
        if self.training:
            new = torch.stack([x.detach().min().clamp_max(0.0), x.detach().max().clamp_min(0.0)])  # observed (low, high)
            self.ranges[slot] = new if not bool(self.seen) else (1 - RANGE_MOMENTUM) * self.ranges[slot] + RANGE_MOMENTUM * new
        low, high = float(self.ranges[slot, 0]), float(self.ranges[slot, 1])
        scale = max((high - low) / 255.0, 1e-8)
        zero_point = int(round(-low / scale))
        return torch.fake_quantize_per_tensor_affine(x, scale, min(max(zero_point, 0), 255), 0, 255)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        x = self._fake_act(image, 0)
        x = self._fake_act(F.relu(F.conv2d(x, _fake_weight(m.conv1.weight), m.conv1.bias, stride=2, padding=1)), 1)
        x = F.max_pool2d(self._fake_act(F.relu(F.conv2d(x, _fake_weight(m.conv2.weight), m.conv2.bias, padding=1)), 2), 2)
        x = F.max_pool2d(self._fake_act(F.relu(F.conv2d(x, _fake_weight(m.conv3.weight), m.conv3.bias, padding=1)), 3), 2)
        embedding = self._fake_act(F.relu(F.linear(torch.flatten(x, 1), _fake_weight(m.embed.weight), m.embed.bias)), 4)
        logits = self._fake_act(F.linear(embedding, _fake_weight(m.head.weight), m.head.bias), 5)
        if self.training:
            self.seen.fill_(True)
        return logits, embedding


def quantization_aware_finetune(
    model: DigitsCNN,
    images: np.ndarray,
    labels: np.ndarray,
    train: TrainConfig,
    config: QATConfig | None = None,
    *,
    teacher_logits: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> DigitsCNN:
    """Fine-tune ``model`` in place under simulated int8 and return it (fp32 weights, ready for PTQ)."""
    config = config or QATConfig()
    wrapper = FakeQuantDigitsCNN(model)
    fit(wrapper, images, labels, replace(train, epochs=config.epochs, lr=config.lr), teacher_logits=teacher_logits, progress=progress)
    model.eval()
    return model
