"""Pruning: structured channel pruning that rebuilds narrower conv layers, plus magnitude pruning, then a short fine-tune.

Channel choice and weight masks come from ``torch.nn.utils.prune`` (L1 norms); the
structured step then copies the surviving filters into a new, narrower ``DigitsCNN``, so the
exported ONNX graph really has fewer channels (zeros alone would not make ORT faster).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from shiftwatch.errors import Invalid
from shiftwatch.retrain.reference_model import DigitsCNN, ProgressCallback, TrainConfig, deterministic, fit


@dataclass(frozen=True, slots=True)
class PruneConfig:
    # Fraction of conv channels kept per layer; 0.75 keeps accuracy on digits after 3 epochs.
    keep_fraction: float = 0.75
    # Fraction of the remaining conv/linear weights zeroed by global L1 magnitude.
    magnitude_amount: float = 0.3
    finetune_epochs: int = 3
    finetune_lr: float = 1e-3


@dataclass(frozen=True, slots=True)
class PruneReport:
    channels_before: tuple[int, int, int]
    channels_after: tuple[int, int, int]
    parameters_before: int
    parameters_after: int
    sparsity: float


def _kept_filters(conv: nn.Conv2d, keep: int) -> torch.Tensor:
    """Indices of the ``keep`` output channels with the largest L1 norm, via ln_structured's mask."""
    probe = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size)  # type: ignore[arg-type]  # a Conv2d's own (h, w)
    probe.weight = nn.Parameter(conv.weight.detach().clone())
    prune.ln_structured(probe, "weight", amount=conv.out_channels - keep, n=1, dim=0)
    alive = probe.weight_mask.flatten(1).sum(dim=1) > 0  # type: ignore[operator]  # ln_structured adds weight_mask
    return torch.nonzero(alive).flatten()


def channel_prune(model: DigitsCNN, keep_fraction: float) -> DigitsCNN:
    """A narrower copy of ``model`` keeping each conv layer's strongest filters (and the inputs that read them)."""
    if not 0.0 < keep_fraction <= 1.0:
        raise Invalid("keep_fraction", "must be in (0, 1]")
    keeps = [max(1, round(c * keep_fraction)) for c in model.channels]
    idx = [_kept_filters(conv, k) for conv, k in zip((model.conv1, model.conv2, model.conv3), keeps)]
    small = DigitsCNN(tuple(keeps), embedding_dim=model.embedding_dim, num_classes=model.num_classes)  # type: ignore[arg-type]  # three convs, three widths
    with torch.no_grad():
        small.conv1.weight.copy_(model.conv1.weight[idx[0]])
        small.conv1.bias.copy_(model.conv1.bias[idx[0]])  # type: ignore[union-attr,index]  # DigitsCNN's convs have biases
        small.conv2.weight.copy_(model.conv2.weight[idx[1]][:, idx[0]])
        small.conv2.bias.copy_(model.conv2.bias[idx[1]])  # type: ignore[union-attr,index]  # DigitsCNN's convs have biases
        small.conv3.weight.copy_(model.conv3.weight[idx[2]][:, idx[1]])
        small.conv3.bias.copy_(model.conv3.bias[idx[2]])  # type: ignore[union-attr,index]  # DigitsCNN's convs have biases
        # The embedding reads the flattened (channel, 4, 4) map: keep the columns of kept channels.
        embed = model.embed.weight.reshape(model.embedding_dim, model.channels[2], -1)
        small.embed.weight.copy_(embed[:, idx[2]].reshape(model.embedding_dim, -1))
        small.embed.bias.copy_(model.embed.bias)
        small.head.load_state_dict(model.head.state_dict())
    small.eval()
    return small


def _prunable(model: DigitsCNN) -> list[tuple[nn.Module, str]]:
    return [(module, "weight") for module in (model.conv1, model.conv2, model.conv3, model.embed, model.head)]


def magnitude_masks(model: DigitsCNN, amount: float) -> None:
    """Zero the ``amount`` smallest-|w| weights across all layers; the masks stay attached until ``make_permanent``."""
    if not 0.0 <= amount < 1.0:
        raise Invalid("magnitude_amount", "must be in [0, 1)")
    if amount > 0:
        prune.global_unstructured(_prunable(model), pruning_method=prune.L1Unstructured, amount=amount)


def make_permanent(model: DigitsCNN) -> None:
    for module, name in _prunable(model):
        if prune.is_pruned(module):
            prune.remove(module, name)


def sparsity(model: DigitsCNN) -> float:
    weights = [getattr(module, name) for module, name in _prunable(model)]
    return float(sum((w == 0).sum().item() for w in weights) / sum(w.numel() for w in weights))


def prune_and_finetune(
    model: DigitsCNN,
    images: np.ndarray,
    labels: np.ndarray,
    train: TrainConfig,
    config: PruneConfig | None = None,
    *,
    teacher_logits: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[DigitsCNN, PruneReport]:
    """Channel-prune, magnitude-prune, then fine-tune with the masks held (pruned weights stay zero)."""
    config = config or PruneConfig()
    with deterministic(train.seed):
        small = channel_prune(model, config.keep_fraction)
        magnitude_masks(small, config.magnitude_amount)
    finetune = replace(train, epochs=config.finetune_epochs, lr=config.finetune_lr)
    fit(small, images, labels, finetune, teacher_logits=teacher_logits, progress=progress)
    make_permanent(small)
    count = lambda m: sum(p.numel() for p in m.parameters())
    report = PruneReport(
        channels_before=model.channels,  # type: ignore[arg-type]  # DigitsCNN: three conv widths
        channels_after=small.channels,  # type: ignore[arg-type]  # as above
        parameters_before=count(model),
        parameters_after=count(small),
        sparsity=sparsity(small),
    )
    return small, report
