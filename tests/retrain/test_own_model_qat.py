"""Quantization-aware training for any module: the fake quantization leaves no trace, rounds like int8
(neither a no-op nor more than rounding), and a contract model defined only here goes through QAT and
ORT's PTQ to an int8 artifact that answers like its fp32 model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
# The imports below load torch: after the skip, hence their E402 noqa.
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402

from shiftwatch.retrain.compress import QUANTIZED_MIN_AGREEMENT, CompressConfig, compress, onnx_accuracy  # noqa: E402
from shiftwatch.retrain.contract import InputSpec  # noqa: E402
from shiftwatch.retrain.contract_family import ContractFamily, load_reference_set  # noqa: E402
from shiftwatch.retrain.fake_quant import WEIGHT_QMAX, fake_quantized  # noqa: E402
from shiftwatch.retrain.model_contract import TorchContract  # noqa: E402
from shiftwatch.retrain.qat import QATConfig  # noqa: E402
from shiftwatch.retrain.runtime import OnnxClassifier  # noqa: E402
from shiftwatch.retrain.torch_contract import ContractModel  # noqa: E402
from shiftwatch.retrain.trainer import TrainConfig, accuracy, deterministic, fit, predict  # noqa: E402
from tests.support import own_model as support  # noqa: E402

SPEC = InputSpec.from_dict(support.INPUT_SPEC)
FACTORY = "tests.retrain.test_own_model_qat:build"


class Residual(nn.Module):
    """A block shiftwatch has no code for: conv-BN-ReLU-conv-BN plus its input, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


def build(width: float = 1.0) -> nn.Module:
    """The user's network: a stride-2 stem, a residual block, a strided conv, global pooling and a two-layer head."""
    c = max(4, round(12 * width))
    return nn.Sequential(
        nn.Conv2d(3, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(), Residual(c),
        nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * c, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


def layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def hook_counts(module: nn.Module) -> list[tuple[int, int]]:
    return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in module.modules()]


def small_model(seed: int = 0) -> tuple[ContractModel, torch.Tensor]:
    with deterministic(seed):
        model = ContractModel(build())
        images = torch.rand((64, 3, 48, 48), generator=torch.Generator().manual_seed(seed)) * 4 - 2
    return model, images


def test_after_qat_the_module_is_as_before_but_for_its_trained_weights() -> None:
    model, images = small_model()
    before = {k: (v.shape, v.dtype, v.clone()) for k, v in model.state_dict().items()}
    params_before = [id(p) for p in model.parameters()]
    classes_before = [type(m) for m in model.modules()]
    hooks_before = hook_counts(model)
    labels = np.arange(len(images)) % 10
    with fake_quantized(model) as observers:
        assert all(parametrize.is_parametrized(layer, "weight") for layer in layers(model))
        assert len(observers) == 1 + len(layers(model))
        assert any(n > 0 for pair in hook_counts(model) for n in pair)  # hooks are really in place during QAT
        fit(model, images.numpy(), labels, TrainConfig(epochs=1, batch_size=16, lr=1e-2, seed=0))
    after = model.state_dict()
    assert list(after) == list(before)
    assert all((after[k].shape, after[k].dtype) == before[k][:2] for k in after)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert hook_counts(model) == hooks_before
    assert [type(m) for m in model.modules()] == classes_before  # parametrize's injected subclasses are gone
    assert [id(p) for p in model.parameters()] == params_before  # the same Parameter objects, still plain fp32
    assert all(layer.weight.dtype == torch.float32 and type(layer.weight) is nn.Parameter for layer in layers(model))
    changed = [k for k in after if k.endswith("weight") and not torch.equal(after[k], before[k][2])]
    assert changed  # it trained; and the weights it kept are not the rounded ones:
    first = layers(model)[0].weight.detach()
    scale = first.abs().flatten(1).amax(dim=1) / WEIGHT_QMAX
    assert not torch.allclose(first / scale[:, None, None, None], torch.round(first / scale[:, None, None, None]))


def test_fake_quantized_forward_is_int8_rounding_no_more_no_less() -> None:
    model, images = small_model(1)
    model.eval()
    with torch.no_grad():
        fp32_logits, _ = model(images)
    with torch.no_grad(), fake_quantized(model) as observers:
        first = layers(model)[0]
        weight, original = first.weight, first.parametrizations.weight.original
        scale = original.abs().flatten(1).amax(dim=1) / WEIGHT_QMAX
        error = (weight - original).abs().flatten(1).amax(dim=1)
        assert torch.all(error <= scale / 2 + 1e-7) and torch.any(error > scale / 4)  # rounded, to the grid's half-step
        steps = weight / scale[:, None, None, None]
        assert torch.allclose(steps, torch.round(steps), atol=1e-4) and steps.abs().max() <= WEIGHT_QMAX + 1e-4
        model(images)  # the first call observes the ranges, in eval mode too (so batch norm's statistics stay)
        seen = {name: (o.low, o.high) for name, o in observers.items()}
        assert all(o.seen for o in observers.values()) and all(low < 0 < high for low, high in seen.values())
        fake_logits, _ = model(images[:32])
        fake_logits = torch.cat([fake_logits, model(images[32:])[0]])  # other batches, same ranges
        assert {name: (o.low, o.high) for name, o in observers.items()} == seen  # eval mode does not move the ranges
        low, high = seen["input"]
        assert low == pytest.approx(float(images.min())) and high == pytest.approx(float(images.max()))
    difference = (fake_logits - fp32_logits).abs()
    spread = float(fp32_logits.max() - fp32_logits.min())
    assert float(difference.max()) > 1e-3 * spread  # not a no-op
    assert float(difference.max()) < 0.1 * spread and float(difference.mean()) < 0.02 * spread  # only rounding
    assert float((fake_logits.argmax(1) == fp32_logits.argmax(1)).float().mean()) > 0.8
    with torch.no_grad():
        again, _ = model(images)
    assert torch.equal(again, fp32_logits)  # and gone afterwards


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("qat")
    reference = support.write_reference(folder / "reference.npz")
    splits = load_reference_set(reference, SPEC)
    family = ContractFamily(TorchContract(FACTORY), SPEC)
    with deterministic(0):
        model = ContractModel(build())
    fit(model, splits.train.images, splits.train.labels, TrainConfig(epochs=12, lr=3e-3, seed=0, schedule="onecycle"))
    return family, model, splits


def test_a_contract_model_goes_through_qat_and_ptq_to_an_int8_artifact(trained, tmp_path) -> None:
    family, model, splits = trained
    teacher_top1 = accuracy(model, splits.test.images, splits.test.labels)
    assert teacher_top1 > 0.7  # chance is 0.1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = compress(model, splits.train.images, splits.train.labels, splits.val.images, splits.val.labels,
                      splits.train.images, tmp_path, TrainConfig(lr=3e-3, seed=0),
                      CompressConfig(steps=("qat", "ptq"), qat=QATConfig(epochs=2)), family=family)  # fmt: skip
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    assert result.steps_applied == ("qat", "ptq") and result.path != result.fp32_path
    assert [a["recipe"] for a in result.details["quantization"]["attempts"]] == ["qat+ptq"]
    assert "QLinearConv" in {node.op_type for node in onnx.load(result.path).graph.node}
    assert result.path.stat().st_size * 2 < result.fp32_path.stat().st_size  # a small graph: QDQ overhead weighs more
    assert list(result.model.state_dict()) == list(before) and not any(
        parametrize.is_parametrized(m) for m in result.model.modules())  # fmt: skip
    # Agreement measured here, in ORT, on the test split (compress judged the val split).
    int8 = OnnxClassifier(result.path, "cpu").predict(splits.test.images).predicted_class
    fp32 = predict(result.model, splits.test.images)[0].argmax(axis=1)
    agreement = float((int8 == fp32).mean())
    assert agreement >= QUANTIZED_MIN_AGREEMENT, agreement  # 0.989 measured (PTQ alone: val agreement 0.985)
    assert result.quantized_parity is not None and result.quantized_parity.top1_agreement >= QUANTIZED_MIN_AGREEMENT
    assert onnx_accuracy(result.path, splits.test.images, splits.test.labels) > teacher_top1 - 0.05


def test_qat_runs_when_ptq_misses(trained, tmp_path) -> None:
    family, model, splits = trained

    def run(family: ContractFamily, **config):
        return compress(model, splits.train.images, splits.train.labels, splits.val.images, splits.val.labels,
                        splits.train.images, tmp_path, TrainConfig(lr=3e-3, seed=0),
                        CompressConfig(qat=QATConfig(epochs=1), **config), family=family)  # fmt: skip

    result = run(family, steps=("ptq",), max_ptq_drop=-1.0)  # any PTQ is "too lossy": the QAT fallback must run
    assert [a["recipe"] for a in result.details["quantization"]["attempts"]] == ["ptq", "qat+ptq"]
    assert result.steps_applied == ("qat", "ptq") and result.details["quantization"]["outcome"] == "int8 from qat+ptq"
