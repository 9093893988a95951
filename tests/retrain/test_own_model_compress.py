"""Compression and training hooks for a contract model: distillation by width or named student, PTQ's QAT
then fp32 fallback, the user's trainer, and what an ONNX-only model cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
# The imports below load torch: after the skip, hence their E402 noqa.
from shiftwatch.errors import Invalid  # noqa: E402
from shiftwatch.retrain.compress import CompressConfig, compress, onnx_accuracy  # noqa: E402
from shiftwatch.retrain.contract import InputSpec  # noqa: E402
from shiftwatch.retrain.contract_family import (  # noqa: E402
    ContractFamily,
    DistillConfig,
    load_reference_set,
)
from shiftwatch.retrain.model_contract import TorchContract  # noqa: E402
from shiftwatch.retrain.trainer import TrainConfig, accuracy  # noqa: E402
from tests.support import own_model as support  # noqa: E402

SPEC = InputSpec.from_dict(support.INPUT_SPEC)
TRAIN = TrainConfig(epochs=4, lr=2e-3, seed=0)
TRAINER_CALLS: list[int] = []


def student():
    """A student with another architecture than the teacher: one conv block fewer, no batch norm."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=4, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(144, 32), nn.ReLU(), nn.Linear(32, 10))  # fmt: skip


def no_width():
    return support.build()


def counting_trainer(module, images, labels, config) -> None:
    """The user's own training function: here one SGD epoch, counted."""
    TRAINER_CALLS.append(len(labels))
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01)
    module.train()
    for start in range(0, len(labels), 64):
        loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(images[start : start + 64])),
                                                 torch.from_numpy(labels[start : start + 64]))  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("compress")
    reference = support.write_reference(folder / "reference.npz")
    weights = support.train_weights(folder / "weights.pt", reference)
    splits = load_reference_set(reference, SPEC)
    return reference, weights, splits


def run(family, teacher, splits, tmp_path: Path, **config):
    return compress(teacher, splits.train.images, splits.train.labels, splits.val.images, splits.val.labels,
                    splits.train.images, tmp_path, TRAIN, CompressConfig(**config), family=family)  # fmt: skip


def test_distillation_trains_the_same_factory_at_half_width(setup, tmp_path):
    _reference, weights, splits = setup
    family = ContractFamily(TorchContract(support.FACTORY), SPEC)
    teacher = family.load_weights(weights)
    result = run(family, teacher, splits, tmp_path, steps=("distill",), distill=DistillConfig(width=0.5, epochs=10))
    teacher_params = sum(p.numel() for p in teacher.parameters())
    assert result.details["student"] == f"{support.FACTORY}(width=0.5)"
    assert result.details["student_parameters"] < 0.45 * teacher_params
    assert family.embedding_dim(result.model) == 32  # only the convs narrow: detectors see the same embedding size
    teacher_top1 = accuracy(teacher, splits.test.images, splits.test.labels)
    assert onnx_accuracy(result.path, splits.test.images, splits.test.labels) > teacher_top1 - 0.1


def test_a_named_student_is_distilled_and_a_factory_without_width_needs_one(setup, tmp_path):
    _reference, weights, splits = setup
    named = ContractFamily(TorchContract(support.FACTORY, student_factory="tests.retrain.test_own_model_compress:student"), SPEC)
    result = run(named, named.load_weights(weights), splits, tmp_path, steps=("distill",), distill=DistillConfig(epochs=6))
    assert result.details["student"] == "tests.retrain.test_own_model_compress:student"
    assert onnx_accuracy(result.path, splits.test.images, splits.test.labels) > 0.5  # chance is 0.1
    fixed = ContractFamily(TorchContract("tests.retrain.test_own_model_compress:no_width"), SPEC)
    with pytest.raises(Invalid, match="student_factory"):
        run(fixed, fixed.load_weights(weights), splits, tmp_path / "b", steps=("distill",))


def test_a_missed_ptq_tries_qat_then_ships_fp32(setup, tmp_path):
    _reference, weights, splits = setup
    family = ContractFamily(TorchContract(support.FACTORY), SPEC)
    teacher = family.load_weights(weights)
    result = run(family, teacher, splits, tmp_path, steps=("ptq",), quantized_min_agreement=1.01)  # no int8 can pass
    attempts = result.details["quantization"]["attempts"]
    assert [a["recipe"] for a in attempts] == ["ptq", "qat+ptq"] and not any(a["parity_ok"] for a in attempts)
    assert all(a["top1_agreement"] > 0.9 for a in attempts)  # close, but not the 1.01 asked for
    assert result.steps_applied == () and result.path == result.fp32_path
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in result.model.state_dict().items())  # pre-QAT weights ship
    assert onnx_accuracy(result.path, splits.test.images, splits.test.labels) > 0.5


def test_the_users_trainer_replaces_the_default_recipe(setup):
    _reference, weights, splits = setup
    family = ContractFamily(TorchContract(support.FACTORY, trainer="tests.retrain.test_own_model_compress:counting_trainer"), SPEC)
    model = family.load_weights(weights)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    TRAINER_CALLS.clear()
    family.train(model, splits.train.images, splits.train.labels, TRAIN)
    assert [len(splits.train)] == TRAINER_CALLS
    assert any(not torch.equal(before[k], v) for k, v in model.module.state_dict().items())
    assert not model.training  # handed back in eval mode, ready for export


def test_an_onnx_only_model_is_served_but_not_retrained(db, settings, setup, tmp_path):
    from shiftwatch.retrain.own_model import register_onnx_model
    from shiftwatch.retrain.pipeline import retrain
    from shiftwatch.retrain.training import LabeledData

    _reference, weights, splits = setup
    family = ContractFamily(TorchContract(support.FACTORY), SPEC)
    path = tmp_path / "user.onnx"
    torch.onnx.export(family.load_weights(weights), (torch.zeros(1, 3, 48, 48),), str(path), dynamo=False,
                      input_names=["x"], output_names=["logits", "embedding"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}, "embedding": {0: "n"}})  # fmt: skip
    with db.session() as session:
        row = register_onnx_model(session, settings.data_dir, "shapes", support.CLASS_NAMES, "v1", path, support.INPUT_SPEC)
        assert row.state == "production" and row.report["retrainable"] is False
    labeled = LabeledData.from_arrays(splits.val.images[:20], splits.val.labels[:20])
    with pytest.raises(Invalid, match="ONNX-only"):
        retrain(db, settings.data_dir, "shapes", labeled)
