"""What retraining and compression need to know about a kind of model, and the digits CNN as one instance.

``compress``, ``package`` and ``retrain`` work on any model through a ``ModelFamily``: how to
copy, train, distill, prune, save and load it, and which reference data it was trained on.
``DigitsFamily`` is the built-in CNN (its own channel pruning and sklearn digits; QAT is shared, ``qat.py``);
``ContractFamily`` (``contract_family.py``) is any PyTorch model a user registers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shiftwatch.retrain.digits import INPUT_SPEC, REFERENCE_SPLIT_SEED, DigitsSplits, split_digits


class ModelFamily(Protocol):
    """The model-specific operations; each returns new models and leaves its arguments untouched (except ``train``)."""

    supports_qat: bool

    def copy(self, model: Any) -> Any: ...
    def train(self, model: Any, images: np.ndarray, labels: np.ndarray, config: Any, *, progress: Any = None) -> None: ...
    def distill(self, teacher: Any, images: np.ndarray, labels: np.ndarray, train: Any, config: Any, *,
                progress: Any = None) -> tuple[Any, dict[str, Any]]: ...  # fmt: skip
    def prune(self, model: Any, images: np.ndarray, labels: np.ndarray, train: Any, config: Any, *,
              teacher_logits: np.ndarray | None, progress: Any = None) -> tuple[Any, dict[str, Any]]: ...  # fmt: skip
    def qat(self, model: Any, images: np.ndarray, labels: np.ndarray, train: Any, config: Any, *,
            teacher_logits: np.ndarray | None, progress: Any = None) -> Any: ...  # fmt: skip
    def save_weights(self, model: Any, path: Path) -> None: ...
    def load_weights(self, path: Path) -> Any: ...
    def embedding_dim(self, model: Any) -> int: ...
    def input_spec(self) -> dict[str, Any]: ...
    def reference(self) -> DigitsSplits: ...
    def reference_snapshot(self) -> dict[str, Any]: ...
    def report_fields(self) -> dict[str, Any]: ...


class DigitsFamily:
    """The reference digits CNN: narrower copies of itself for distillation and pruning, sklearn digits as reference."""

    supports_qat = True

    def copy(self, model: Any) -> Any:
        from shiftwatch.retrain.reference_model import model_from_state

        return model_from_state(model.state_dict())

    def train(self, model: Any, images: np.ndarray, labels: np.ndarray, config: Any, *, progress: Any = None) -> None:
        from shiftwatch.retrain.reference_model import fit

        fit(model, images, labels, config, progress=progress)

    def distill(self, teacher: Any, images: np.ndarray, labels: np.ndarray, train: Any, config: Any, *,
                progress: Any = None) -> tuple[Any, dict[str, Any]]:  # fmt: skip
        from shiftwatch.retrain.distill import distill

        student = distill(teacher, images, labels, train, config, progress=progress)
        return student, {"student_channels": list(student.channels)}

    def prune(self, model: Any, images: np.ndarray, labels: np.ndarray, train: Any, config: Any, *,
              teacher_logits: np.ndarray | None, progress: Any = None) -> tuple[Any, dict[str, Any]]:  # fmt: skip
        from shiftwatch.retrain.prune import prune_and_finetune

        small, pruned = prune_and_finetune(model, images, labels, train, config, teacher_logits=teacher_logits, progress=progress)
        return small, {"prune": {"channels_after": list(pruned.channels_after), "sparsity": round(pruned.sparsity, 4)}}

    def qat(self, model: Any, images: np.ndarray, labels: np.ndarray, train: Any, config: Any, *,
            teacher_logits: np.ndarray | None, progress: Any = None) -> Any:  # fmt: skip
        from shiftwatch.retrain.qat import quantization_aware_finetune

        return quantization_aware_finetune(model, images, labels, train, config, teacher_logits=teacher_logits, progress=progress)

    def save_weights(self, model: Any, path: Path) -> None:
        from shiftwatch.retrain.reference_model import save_weights

        save_weights(model, path)

    def load_weights(self, path: Path) -> Any:
        from shiftwatch.retrain.reference_model import load_weights

        return load_weights(path)

    def embedding_dim(self, model: Any) -> int:
        return int(model.embedding_dim)

    def input_spec(self) -> dict[str, Any]:
        return dict(INPUT_SPEC)

    def reference(self) -> DigitsSplits:
        return split_digits(REFERENCE_SPLIT_SEED)

    def reference_snapshot(self) -> dict[str, Any]:
        return {"dataset": "sklearn-digits-32x32", "split_seed": REFERENCE_SPLIT_SEED}

    def report_fields(self) -> dict[str, Any]:
        return {}


def with_epochs(config: Any, epochs: int, lr: float | None = None) -> Any:
    """A copy of a ``TrainConfig`` with other epochs (and learning rate)."""
    return replace(config, epochs=epochs) if lr is None else replace(config, epochs=epochs, lr=lr)
