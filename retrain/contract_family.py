"""Retraining and compression for a user's PyTorch model (``TorchContract``): nothing here knows its layers.

Fine-tuning is ``fit`` (or the user's ``trainer`` hook); distillation trains the student the
user names, or the same factory at a smaller ``width``; structured pruning follows the
model's dependency graph with torch-pruning (imported only when pruning runs); PTQ is ORT's,
as for every model. QAT is ``qat.py``'s, as for the digits CNN: fake quantization found from
the module's conv and linear layers (``fake_quant.py``), trained with ``fit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftwatch.artifacts import sha256_file
from shiftwatch.errors import Invalid, Unavailable
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.digits import DigitsSplits, stratified_split
from shiftwatch.retrain.family import with_epochs
from shiftwatch.retrain.qat import quantization_aware_finetune
from shiftwatch.retrain.reference_model import deterministic, fit, predict
from shiftwatch.retrain.reference_set import REFERENCE_SPLIT_SEED, TEST_FRACTION, VAL_FRACTION, read_reference_set
from shiftwatch.retrain.torch_contract import (
    ContractModel,
    TorchContract,
    build,
    copy_model,
    last_linear,
    load_callable,
    save_module_weights,
)


class ContractFamily:
    """A registered ``TorchContract`` with its declared preprocessing and the reference set it is judged on."""

    supports_qat = True

    def __init__(self, contract: TorchContract, spec: InputSpec, reference_set: Path | None = None) -> None:
        self.contract = contract
        self.spec = spec
        self.reference_set = reference_set or (Path(contract.reference_set) if contract.reference_set else None)

    def copy(self, model: ContractModel) -> ContractModel:
        return copy_model(model)

    def train(self, model: ContractModel, images: np.ndarray, labels: np.ndarray, config: Any, *, progress: Any = None) -> None:
        """The user's ``trainer(module, images, labels, config)`` when registered, else the default recipe (``fit``)."""
        if self.contract.trainer:
            load_callable(self.contract.trainer, "trainer")(model.module, images, labels, config)
            model.eval()
        else:
            fit(model, images, labels, config, progress=progress)

    def distill(self, teacher: ContractModel, images: np.ndarray, labels: np.ndarray, train: Any, config: Any, *,
                progress: Any = None) -> tuple[ContractModel, dict[str, Any]]:  # fmt: skip
        targets, _ = predict(teacher, images)
        with deterministic(train.seed):
            if self.contract.student_factory:
                student = build(TorchContract(self.contract.student_factory))
            else:
                try:
                    student = build(self.contract, width=config.width)
                except TypeError:
                    raise Invalid("distill", f"{self.contract.factory} takes no width argument; register a student_factory") from None
        fit(student, images, labels, with_epochs(train, config.epochs), teacher_logits=targets, progress=progress)
        return student, {"student": self.contract.student_factory or f"{self.contract.factory}(width={config.width})",
                         "student_parameters": _parameters(student)}  # fmt: skip

    def prune(self, model: ContractModel, images: np.ndarray, labels: np.ndarray, train: Any, config: Any, *,
              teacher_logits: np.ndarray | None, progress: Any = None) -> tuple[ContractModel, dict[str, Any]]:  # fmt: skip
        """Remove ``1 - keep_fraction`` of the channels by L1 magnitude along the dependency graph, then fine-tune."""
        try:
            import torch_pruning as tp
        except ModuleNotFoundError:
            raise Unavailable("structured pruning of a contract model needs torch-pruning: pip install 'shiftwatch[train]'") from None
        small = copy_model(model)
        example = torch.zeros((1, *self.spec.shape))
        before = _parameters(small)
        head = small.module.get_submodule(last_linear(small.module))
        with deterministic(train.seed):
            pruner = tp.pruner.MagnitudePruner(
                small.module, example, importance=tp.importance.MagnitudeImportance(p=1),
                pruning_ratio=1.0 - config.keep_fraction, ignored_layers=[head],
            )  # fmt: skip
            pruner.step()
        fit(small, images, labels, with_epochs(train, config.finetune_epochs, config.finetune_lr),
            teacher_logits=teacher_logits, progress=progress)  # fmt: skip
        return small, {"prune": {"library": f"torch-pruning {tp.__version__}", "parameters_before": before,
                                 "parameters_after": _parameters(small), "embedding_dim": self.embedding_dim(small)}}  # fmt: skip

    def qat(self, model: ContractModel, images: np.ndarray, labels: np.ndarray, train: Any, config: Any, *,
            teacher_logits: np.ndarray | None, progress: Any = None) -> ContractModel:  # fmt: skip
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

    def reference(self) -> DigitsSplits:
        """The user's reference set (uint8 ``images`` + ``labels`` in an .npz), preprocessed and split 65/15/20."""
        if self.reference_set is None:
            raise Invalid("reference_set", "a contract model needs a reference set (.npz with images and labels) to retrain")
        return load_reference_set(self.reference_set, self.spec)

    def reference_snapshot(self) -> dict[str, Any]:
        path = self.reference_set
        return {"dataset": str(path), "sha256": sha256_file(path) if path and path.is_file() else None,
                "split_seed": REFERENCE_SPLIT_SEED}  # fmt: skip

    def report_fields(self) -> dict[str, Any]:
        return {"contract": {"kind": "torch", **self.contract.as_dict()}}


def load_reference_set(path: Path, spec: InputSpec, seed: int = REFERENCE_SPLIT_SEED) -> DigitsSplits:
    """Stratified train/val/test of an .npz reference set (``reference_set``), every image through the declared preprocessing."""
    raw, labels = read_reference_set(path)
    return stratified_split(spec.from_uint8(raw), labels, seed, VAL_FRACTION, TEST_FRACTION)


def _parameters(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
