"""The torch case of the model contract (``model_contract.TorchContract``): built from ``package.module:build``, embedding tapped by name.

The network stays the user's own ``nn.Module``; ``ContractModel`` wraps it so it returns
(logits, embedding) like every model shiftwatch trains and exports. The embedding is the
input of the last ``nn.Linear`` (the penultimate features of ResNets, MobileNets, ViTs'
heads) unless a layer is named, whose output is taken instead. The tap is a hook registered
for one forward call, so copies (``copy.deepcopy``) and ONNX tracing see a plain module.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shiftwatch.errors import Invalid
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.model_contract import TorchContract, load_callable
from shiftwatch.retrain.onnx_contract import PROBE_ROWS, holds_probabilities


def last_linear(module: nn.Module) -> str:
    """Name of the last ``nn.Linear`` registered in ``module`` (the classifier head, in common architectures)."""
    names: list[str] = [name for name, layer in module.named_modules() if isinstance(layer, nn.Linear)]
    if not names:
        raise Invalid("embedding_layer", "the model has no nn.Linear head; name the embedding layer")
    return names[-1]


class ContractModel(nn.Module):
    """The user's module, returning (logits, embedding (N, D)) where the module returns logits."""

    def __init__(self, module: nn.Module, embedding_layer: str | None = None) -> None:
        super().__init__()
        self.module = module
        self.tap_input = embedding_layer is None
        self.layer_name = embedding_layer or last_linear(module)
        layers = dict(module.named_modules())
        if self.layer_name not in layers:
            raise Invalid("embedding_layer", f"{self.layer_name!r} is not a layer of the model; some layers: {', '.join(list(layers)[1:8])}")

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        layer = self.module.get_submodule(self.layer_name)
        if self.tap_input:
            handle = layer.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        else:
            handle = layer.register_forward_hook(lambda _m, _a, out: captured.append(out))
        try:
            logits = self.module(image)
        finally:
            handle.remove()
        if not captured or not isinstance(logits, torch.Tensor):
            raise Invalid("embedding_layer", f"{self.layer_name!r} did not run in forward, or forward does not return one tensor")
        return logits, torch.flatten(captured[-1], 1)


def load_state(module: nn.Module, weights: Path) -> None:
    """Load a plain state_dict (``weights_only``: no pickled code) strictly into ``module``."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise Invalid("weights", f"{weights.name} is not a readable torch state_dict: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise Invalid("weights", f"{weights.name} holds a {type(state).__name__}, not a state_dict")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise Invalid("weights", f"do not fit the factory's model: {str(exc).splitlines()[0]}") from None


def build(contract: TorchContract, weights: Path | None = None, **factory_kwargs: Any) -> ContractModel:
    """The factory's module (with ``weights`` loaded when given), wrapped; in eval mode."""
    module = load_callable(contract.factory, "factory")(**factory_kwargs)
    if not isinstance(module, nn.Module):
        raise Invalid("factory", f"{contract.factory!r} returned a {type(module).__name__}, not an nn.Module")
    if weights is not None:
        load_state(module, weights)
    model = ContractModel(module, contract.embedding_layer)
    model.eval()
    return model


def save_module_weights(model: ContractModel, path: Path) -> None:
    """The user's module's state_dict as plain tensors (what ``load_state`` and the user's own code read)."""
    torch.save({name: t.detach().clone() for name, t in model.module.state_dict().items()}, path)


def copy_model(model: ContractModel) -> ContractModel:
    return copy.deepcopy(model)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    num_classes: int
    embedding_dim: int


@torch.no_grad()
def validate(model: ContractModel, spec: InputSpec, num_classes: int, seed: int = 0) -> ProbeResult:
    """Run a probe batch at the declared shape: logits (N, classes) that are not probabilities, a 2-d embedding, all finite."""
    probe = torch.from_numpy(np.random.default_rng(seed).random((PROBE_ROWS, *spec.shape), dtype=np.float32))
    model.eval()
    try:
        logits, embedding = model(spec_probe(spec, probe))
    except Invalid:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the user's forward raises
        raise Invalid("model", f"forward fails on a {list(spec.shape)} input: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise Invalid("model", f"returns logits of shape {list(logits.shape)}; expected [N, {num_classes}] for {num_classes} classes")
    if not (torch.isfinite(logits).all() and torch.isfinite(embedding).all()):
        raise Invalid("model", "returns non-finite logits or embedding on a probe input")
    if holds_probabilities(logits.numpy()):  # retraining's loss and distillation's soft targets need logits
        raise Invalid("model", "returns probabilities (every probe row is in [0, 1] and sums to 1); "
                               "the contract needs logits: drop the final softmax")  # fmt: skip
    return ProbeResult(num_classes, int(embedding.shape[1]))


def spec_probe(spec: InputSpec, pixels: torch.Tensor) -> torch.Tensor:
    """Probe pixels in 0..1 as the model sees them after the declared normalisation."""
    return torch.from_numpy(spec.normalise(pixels.numpy()))
