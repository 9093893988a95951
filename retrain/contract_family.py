"""Retraining and compression of a contract model (``TorchContract``): the one path every PyTorch model takes.

Nothing here knows a model's layers. Fine-tuning is the default trainer (``trainer.fit``) or the
user's ``trainer`` hook; distillation trains the student the user names, or the same factory at a
smaller ``width``; structured pruning follows the model's dependency graph with torch-pruning
(imported only when pruning runs); QAT is ``qat.py``'s (fake quantization found from the conv and
linear layers, trained with ``fit``); PTQ is ORT's. The example digits CNN and ResNet-18 go
through exactly this, as a user's network does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftwatch.artifacts import sha256_file
from shiftwatch.errors import Invalid, Unavailable
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.model_contract import TorchContract, load_callable
from shiftwatch.retrain.qat import QATConfig, quantization_aware_finetune
from shiftwatch.retrain.reference_set import (
    REFERENCE_SPLIT_SEED,
    TEST_FRACTION,
    VAL_FRACTION,
    Splits,
    is_loader,
    read_reference,
    stratified_split,
)
from shiftwatch.retrain.torch_contract import ContractModel, build, copy_model, last_linear, save_module_weights
from shiftwatch.retrain.trainer import ProgressCallback, TrainConfig, deterministic, fit, predict


@dataclass(frozen=True, slots=True)
class DistillConfig:
    # Student = factory(width=...) unless a student_factory is registered; 0.5 halves every conv's channels.
    width: float = 0.5
    epochs: int = 12


@dataclass(frozen=True, slots=True)
class PruneConfig:
    # Fraction of each prunable layer's channels kept (torch-pruning, L1 magnitude); the head is never pruned.
    keep_fraction: float = 0.75
    finetune_epochs: int = 3
    finetune_lr: float = 1e-3


class ContractFamily:
    """A registered ``TorchContract`` with its declared preprocessing and the reference set it is judged on."""

    def __init__(self, contract: TorchContract, spec: InputSpec, reference_set: str | Path | None = None) -> None:
        self.contract = contract
        self.spec = spec
        self.reference_set = reference_set or contract.reference_set

    def new_model(self, seed: int) -> ContractModel:
        """The factory's freshly initialised model (``seed`` drives the initialisation)."""
        with deterministic(seed):
            return build(self.contract)

    def copy(self, model: ContractModel) -> ContractModel:
        return copy_model(model)

    def train(self, model: ContractModel, images: np.ndarray, labels: np.ndarray, config: TrainConfig, *,
              progress: ProgressCallback | None = None) -> None:  # fmt: skip
        """The user's ``trainer(module, images, labels, config)`` when registered, else the default recipe (``fit``)."""
        if self.contract.trainer:
            load_callable(self.contract.trainer, "trainer")(model.module, images, labels, config)
            model.eval()
        else:
            fit(model, images, labels, config, progress=progress)

    def distill(self, teacher: ContractModel, images: np.ndarray, labels: np.ndarray, train: TrainConfig,
                config: DistillConfig, *, progress: ProgressCallback | None = None) -> tuple[ContractModel, dict[str, Any]]:  # fmt: skip
        """A fresh student trained on ``teacher``'s soft targets plus the labels (Hinton et al.)."""
        if not 0.0 < config.width <= 1.0:
            raise Invalid("width", "must be in (0, 1]")
        targets = teacher_targets(teacher, images)
        with deterministic(train.seed):
            if self.contract.student_factory:
                student = build(TorchContract(self.contract.student_factory))
            else:
                try:
                    student = build(self.contract, width=config.width)
                except TypeError:
                    raise Invalid("distill", f"{self.contract.factory} takes no width argument; register a student_factory") from None
        fit(student, images, labels, replace(train, epochs=config.epochs), teacher_logits=targets, progress=progress)
        return student, {"student": self.contract.student_factory or f"{self.contract.factory}(width={config.width})",
                         "student_parameters": parameters(student)}  # fmt: skip

    def prune(self, model: ContractModel, images: np.ndarray, labels: np.ndarray, train: TrainConfig, config: PruneConfig, *,
              teacher_logits: np.ndarray | None, progress: ProgressCallback | None = None) -> tuple[ContractModel, dict[str, Any]]:  # fmt: skip
        """Remove ``1 - keep_fraction`` of the channels by L1 magnitude along the dependency graph, then fine-tune."""
        if not 0.0 < config.keep_fraction <= 1.0:
            raise Invalid("keep_fraction", "must be in (0, 1]")
        try:
            import torch_pruning as tp
        except ModuleNotFoundError:
            raise Unavailable("structured pruning needs torch-pruning: pip install 'shiftwatch[train]'") from None
        small = copy_model(model)
        example = torch.zeros((1, *self.spec.shape))
        before = parameters(small)
        head = small.module.get_submodule(last_linear(small.module))
        with deterministic(train.seed):
            pruner = tp.pruner.MagnitudePruner(
                small.module, example, importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=1.0 - config.keep_fraction, ignored_layers=[head],
            )  # fmt: skip
            pruner.step()
        fit(small, images, labels, replace(train, epochs=config.finetune_epochs, lr=config.finetune_lr),
            teacher_logits=teacher_logits, progress=progress)  # fmt: skip
        return small, {"prune": {"library": f"torch-pruning {tp.__version__}", "parameters_before": before,
                                 "parameters_after": parameters(small), "embedding_dim": self.embedding_dim(small)}}  # fmt: skip

    def qat(self, model: ContractModel, images: np.ndarray, labels: np.ndarray, train: TrainConfig, config: QATConfig, *,
            teacher_logits: np.ndarray | None, progress: ProgressCallback | None = None) -> ContractModel:  # fmt: skip
        """Fine-tune ``model`` in place under simulated int8 and return it (fp32 weights, ready for PTQ).

        Always the default recipe (``fit`` at ``QATConfig``'s epochs and learning rate), never the user's
        ``trainer`` hook: QAT must be a short, low-rate fine-tune of the weights PTQ would quantize, and a
        trainer is handed only a ``TrainConfig`` whose epochs and rate it is free to ignore.
        """
        return quantization_aware_finetune(model, images, labels, train, config, teacher_logits=teacher_logits,
                                           progress=progress)  # fmt: skip

    def save_weights(self, model: ContractModel, path: Path) -> None:
        save_module_weights(model, path)

    def load_weights(self, path: Path) -> ContractModel:
        return build(self.contract, path)

    @torch.no_grad()
    def embedding_dim(self, model: ContractModel) -> int:
        model.eval()
        return int(model(torch.zeros((1, *self.spec.shape)))[1].shape[1])

    def input_spec(self) -> dict[str, Any]:
        return self.spec.as_dict()

    def reference(self) -> Splits:
        """The reference set (uint8 ``images`` + ``labels``), preprocessed as declared and split 65/15/20."""
        if self.reference_set is None:
            raise Invalid("reference_set", "a contract model needs a reference set (.npz with images and labels) to retrain")
        return load_reference_set(self.reference_set, self.spec)

    def reference_snapshot(self) -> dict[str, Any]:
        reference = self.reference_set
        path = None if reference is None or (isinstance(reference, str) and is_loader(reference)) else Path(reference)
        return {"dataset": None if reference is None else str(reference),
                "sha256": sha256_file(path) if path and path.is_file() else None, "split_seed": REFERENCE_SPLIT_SEED}  # fmt: skip

    def report_fields(self) -> dict[str, Any]:
        return {"contract": self.contract.as_dict()}


def load_reference_set(reference: str | Path, spec: InputSpec, seed: int = REFERENCE_SPLIT_SEED) -> Splits:
    """Stratified train/val/test of a reference set (.npz or loader), every image through the declared preprocessing."""
    raw, labels = read_reference(reference)
    return stratified_split(spec.from_uint8(raw), labels, seed, VAL_FRACTION, TEST_FRACTION)


def teacher_targets(teacher: ContractModel, images: np.ndarray) -> np.ndarray:
    """The teacher's logits on the training images (soft targets are computed once, not per batch)."""
    logits, _ = predict(teacher, images)
    return logits


def parameters(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
