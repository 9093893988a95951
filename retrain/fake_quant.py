"""Simulated int8 inference for any ``nn.Module``, for quantization-aware training, leaving no trace on the module.

Inside ``fake_quantized(module)`` every convolution (1-3 d) and ``nn.Linear`` weight is rounded per
output channel to symmetric int8 (a parametrization), and the module's input and the output of
each of those layers are rounded per tensor to uint8 over a moving-average range (forward hooks),
all with straight-through gradients from ``torch.fake_quantize_*``. That is the int8 arithmetic
ORT's static QDQ PTQ (``quantize.py``) will run, found from the module's layers alone, so it
works on a user's network as on the digits CNN. On exit the parametrizations and hooks are
removed and the trained fp32 weights are back under their own names (same parameters, same
``state_dict``), ready for export and PTQ.

Where an approximation: ORT folds batch norm into the convolution and fuses a following ReLU,
so it rounds the conv's activations after BN and ReLU, while the hooks round the conv's own
output. Per-channel weight rounding is unaffected (BN scales whole output channels); the
activation rounding is slightly coarser than ORT's, which errs on the side of robustness.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

# Moving-average momentum of the activation ranges (PyTorch's MovingAverageMinMaxObserver default is 0.01;
# 0.1 settles within the few hundred steps of a short fine-tune).
RANGE_MOMENTUM = 0.1
# Weights round to [-64, 64]: the 7-bit grid ORT uses with ``QuantizeConfig.reduce_range`` (the default),
# so training sees the rounding the shipped artifact has.
WEIGHT_QMAX = 64
QUANTIZED_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)  # weight (out, in, ...)


def fake_quantize_weight(weight: torch.Tensor, qmax: int = WEIGHT_QMAX) -> torch.Tensor:
    """``weight`` rounded per output channel to symmetric integers in [-qmax, qmax] (gradient passes straight through)."""
    scale = weight.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-8) / qmax
    zero = torch.zeros(weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -qmax, qmax)


class _PerChannelWeight(nn.Module):
    """The parametrization: what ``layer.weight`` reads as while it is registered."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize_weight(weight)


class ActivationObserver:
    """A per-tensor uint8 fake quantizer whose [low, high] (always holding 0) follows a moving average.

    The range updates in training mode, and on the first call whatever the mode (so an eval
    forward before any training rounds over a real range rather than [0, 0]).
    """

    def __init__(self, momentum: float = RANGE_MOMENTUM) -> None:
        self.momentum = momentum
        self.low = 0.0
        self.high = 0.0
        self.seen = False

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if training or not self.seen:
            low, high = min(float(x.detach().min()), 0.0), max(float(x.detach().max()), 0.0)
            if self.seen:
                low = (1 - self.momentum) * self.low + self.momentum * low
                high = (1 - self.momentum) * self.high + self.momentum * high
            self.low, self.high, self.seen = low, high, True
        scale = max((self.high - self.low) / 255.0, 1e-8)
        zero_point = min(max(int(round(-self.low / scale)), 0), 255)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


@contextmanager
def fake_quantized(module: nn.Module, momentum: float = RANGE_MOMENTUM) -> Iterator[dict[str, ActivationObserver]]:
    """Simulate int8 inference in ``module``'s forward for the duration; yields the observers by tensor name.

    Names: ``"input"`` for the module's first positional input, then each quantized layer's
    qualified name (``"conv1"``, ``"module.0"``, ...) for its output. Non-tensor inputs and
    outputs pass through unchanged. Everything is undone on exit, also when the body raises.
    """
    layers = [(name, layer) for name, layer in module.named_modules() if isinstance(layer, QUANTIZED_LAYERS)]
    observers = {"input": ActivationObserver(momentum), **{name: ActivationObserver(momentum) for name, _ in layers}}
    handles = []

    def quantize_input(owner: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not args or not isinstance(args[0], torch.Tensor):
            return None
        return (observers["input"](args[0], owner.training), *args[1:])

    def quantize_output(name: str) -> Any:
        def hook(layer: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
            return observers[name](output, layer.training) if isinstance(output, torch.Tensor) else None

        return hook

    parametrized: list[tuple[nn.Module, list[str]]] = []  # with its parameters' order, which the removal changes
    try:
        handles.append(module.register_forward_pre_hook(quantize_input))
        for name, layer in layers:
            handles.append(layer.register_forward_hook(quantize_output(name)))
            # A weight the user parametrized already (weight_norm, ...) is left as it is: removing ours would remove theirs.
            if not parametrize.is_parametrized(layer, "weight"):
                parametrized.append((layer, list(layer._parameters)))
                parametrize.register_parametrization(layer, "weight", _PerChannelWeight())
        yield observers
    finally:
        for handle in handles:
            handle.remove()
        for layer, order in parametrized:
            # leave_parametrized=False: the original fp32 Parameter object goes back under ``weight``,
            # re-registered last; the old order keeps ``state_dict`` (and saved weights files) as they were.
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
            for name in order:
                layer._parameters[name] = layer._parameters.pop(name)
