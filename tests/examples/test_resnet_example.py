"""The shipped realistic example: ResNet-18 in plain PyTorch meets the contract, prunes along its residual
connections, exports with parity; the textured digits are seeded and their drift families are colour-safe."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
# The imports below load torch: after the skip, hence their E402 noqa.
from shiftwatch.errors import Invalid  # noqa: E402
from shiftwatch.examples import resnet, textured_digits  # noqa: E402
from shiftwatch.retrain.contract import InputSpec  # noqa: E402
from shiftwatch.retrain.contract_family import ContractFamily, PruneConfig  # noqa: E402
from shiftwatch.retrain.export import export_artifact  # noqa: E402
from shiftwatch.retrain.model_contract import TorchContract  # noqa: E402
from shiftwatch.retrain.torch_contract import build, validate  # noqa: E402
from shiftwatch.retrain.trainer import TrainConfig  # noqa: E402

SPEC = InputSpec.from_dict(resnet.INPUT_SPEC)


def test_textured_digits_are_seeded_rgb_and_drift_with_colour_safe_corruptions():
    images, labels = textured_digits.render(12, seed=3)
    again, _ = textured_digits.render(12, seed=3)
    assert images.shape == (12, 96, 96, 3) and images.dtype == np.uint8 and np.array_equal(images, again)
    assert set(labels) <= set(range(10))
    noisy = textured_digits.corrupt(images, "gaussian_noise", 3, np.random.default_rng(0))
    assert noisy.shape == images.shape and np.abs(noisy.astype(int) - images).mean() > 10
    with pytest.raises(Invalid, match="not available for colour"):
        textured_digits.corrupt(images, "rotation", 3, np.random.default_rng(0))


def test_resnet18_meets_the_contract_and_prunes_along_its_residual_connections(tmp_path):
    pytest.importorskip("torch_pruning")
    contract = TorchContract(resnet.FACTORY)
    torch.manual_seed(0)
    model = build(contract, width=0.25)
    assert model.layer_name == "fc" and validate(model, SPEC, 10).embedding_dim == 128  # 512 x 0.25
    full = sum(p.numel() for p in resnet.build(1.0).parameters())
    assert 11_000_000 < full < 11_400_000  # ResNet-18's 11.2 M (10 classes)
    images, labels = textured_digits.render(24, seed=0)
    x = SPEC.from_uint8(images)
    family = ContractFamily(contract, SPEC)
    small, details = family.prune(model, x, labels, TrainConfig(epochs=1, seed=0), PruneConfig(keep_fraction=0.5, finetune_epochs=1),
                                  teacher_logits=None)  # fmt: skip
    assert details["prune"]["parameters_after"] < 0.4 * details["prune"]["parameters_before"]
    exported = export_artifact(small, tmp_path, x[:8], name="pruned")
    assert exported.parity.ok  # the pruned graph (shortcuts and all) still computes what torch computes

