"""What a model must provide to be served, monitored, retrained and compressed: the model contract, in one place.

A model is a classifier over images with a declared preprocessing (``InputSpec``: shape, resize,
channel order, value range, mean/std) and one of two cases:

- ``TorchContract``: a PyTorch ``nn.Module`` from a factory (``package.module:build``, called with
  no arguments, or ``width=`` for distillation's student) returning logits, its weights (a plain
  ``state_dict``), and a reference set (uint8 images + labels). Its embedding is the input of
  the last ``nn.Linear`` unless a layer is named. Retraining fine-tunes it (the default trainer,
  or the user's ``trainer``), and compression distills, prunes (torch-pruning), QATs and
  quantizes it; the example digits CNN and ResNet-18 (``shiftwatch.examples``) are registered
  exactly this way.
- ``OnnxContract``: an ONNX file whose logits (or probabilities) and embedding tensors are named.
  It is served, int8-quantized, shadowed and canaried; with no weights it is not retrained.

No torch here: the registry, the gateway and the CLI read contracts without the ``train`` extra.
The torch case's wrapper is ``torch_contract``, the ONNX case's graph surgery ``onnx_contract``;
``own_model`` registers either. A version stores its contract in ``report["contract"]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from shiftwatch.errors import Invalid
from shiftwatch.retrain.contract import InputSpec

__all__ = ["InputSpec", "OnnxContract", "TorchContract", "load_callable"]


@dataclass(frozen=True, slots=True)
class TorchContract:
    """Where a PyTorch model comes from; stored in the version's report and carried to every candidate."""

    factory: str  # "package.module:build", called with no arguments (or width=... for a narrower student)
    embedding_layer: str | None = None  # None: the input of the last nn.Linear
    student_factory: str | None = None  # distillation's student; None: factory(width=DistillConfig.width)
    trainer: str | None = None  # "package.module:train", called as train(module, images, labels, config)
    # The reference data: an .npz of uint8 "images" and int "labels", or "package.module:function" returning them.
    reference_set: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "torch", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TorchContract:
        known = {k: data.get(k) for k in ("factory", "embedding_layer", "student_factory", "trainer", "reference_set")}
        if not known["factory"]:
            raise Invalid("contract.factory", "is required")
        return cls(**known)  # type: ignore[arg-type]  # factory checked above; the rest may be None


@dataclass(frozen=True, slots=True)
class OnnxContract:
    """Which tensors of a user's ONNX graph are the logits and the embedding (None: the first output, the head's input)."""

    logits_output: str | None = None
    embedding_output: str | None = None
    outputs: Literal["logits", "probabilities"] = "logits"  # probabilities: the named output is already a softmax

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "onnx", **asdict(self)}


def load_callable(reference: str, field: str) -> Callable[..., Any]:
    """``package.module:name`` -> the object; a clear error naming ``field`` when it is not there."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise Invalid(field, f"{reference!r} is not of the form package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Invalid(field, f"cannot import {module_name!r}: {exc}") from None
    target: object = getattr(module, attribute, None)
    if not callable(target):
        raise Invalid(field, f"{module_name!r} has no callable {attribute!r}")
    return target
