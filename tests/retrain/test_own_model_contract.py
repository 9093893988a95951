"""The model contract: registering a user's PyTorch factory or ONNX file, its preprocessing, and the refusals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

torch = pytest.importorskip("torch")
# The imports below load torch: after the skip, hence their E402 noqa.
from shiftwatch.collector.tables import ModelVersion  # noqa: E402
from shiftwatch.errors import Invalid  # noqa: E402
from shiftwatch.retrain.contract import InputSpec  # noqa: E402
from shiftwatch.retrain.model_contract import TorchContract  # noqa: E402
from shiftwatch.retrain.onnx_contract import last_linear_input  # noqa: E402
from shiftwatch.retrain.own_model import register_onnx_model, register_torch_model  # noqa: E402
from shiftwatch.retrain.runtime import OnnxClassifier  # noqa: E402
from shiftwatch.retrain.torch_contract import build, last_linear  # noqa: E402
from tests.support import own_model as support  # noqa: E402


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained but seeded weights: the contract does not care how good the model is."""
    path = tmp_path_factory.mktemp("own") / "weights.pt"
    torch.manual_seed(0)
    torch.save(support.build().state_dict(), path)
    return path


def versions(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(ModelVersion)) or 0)


def register(db, settings, weights, **overrides):
    values = {"contract": TorchContract(support.FACTORY), "weights": weights, "input_spec": support.INPUT_SPEC,
              "class_names": support.CLASS_NAMES}  # fmt: skip
    values.update(overrides)
    with db.session() as session:
        row = register_torch_model(session, settings.data_dir, "shapes", values.pop("class_names"), "v1", **values)
        return row.id, row.embedding_dim, dict(row.input_spec), dict(row.report), row.artifact_path, row.state


def test_a_factory_model_is_registered_with_its_preprocessing_and_serves_the_same_answers(db, settings, weights):
    _, dim, spec, report, artifact, state = register(db, settings, weights)
    assert dim == 32 and state == "production"  # the input of the last nn.Linear; first version of the model
    assert spec["mean"] == [0.5, 0.5, 0.5] and spec["shape"] == [3, 48, 48] and spec["channel_order"] == "rgb"
    assert report["contract"]["factory"] == support.FACTORY and report["parity"]["ok"]
    images, _ = support.render(3, 8)
    inputs = InputSpec.from_dict(spec).from_uint8(images)
    served = OnnxClassifier(settings.data_dir / artifact).predict(inputs)
    model = build(TorchContract(support.FACTORY), settings.data_dir / report["weights_path"])
    with torch.no_grad():
        logits, embedding = model(torch.from_numpy(inputs))
    assert np.abs(served.logits - logits.numpy()).max() < 1e-3
    assert np.abs(served.embeddings - embedding.numpy()).max() < 1e-3


def test_a_named_layer_overrides_the_embedding(db, settings, weights):
    _, dim, _, report, _, _ = register(db, settings, weights, contract=TorchContract(support.FACTORY, embedding_layer="9"))
    assert dim == 32 * 9 and report["contract"]["embedding_layer"] == "9"  # the AdaptiveAvgPool2d(3) output, flattened
    assert last_linear(support.build()) == "13"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"class_names": ["a", "b", "c"]}, "model", r"expected \[N, 3\]"),
        ({"contract": TorchContract("tests.support.own_model:build_with_softmax")}, "model", "returns probabilities"),
        ({"contract": TorchContract(support.FACTORY, embedding_layer="nope")}, "embedding_layer", "not a layer"),
        ({"contract": TorchContract("tests.support.own_model:missing")}, "factory", "no callable"),
        ({"contract": TorchContract("no_such_package.models:build")}, "factory", "cannot import"),
        ({"input_spec": {**support.INPUT_SPEC, "std": [0.0, 1, 1]}}, "input_spec.std", "positive"),
        ({"input_spec": {**support.INPUT_SPEC, "channel_order": "gray"}}, "input_spec.channel_order", "does not fit"),
    ],
)
def test_bad_registrations_are_refused_with_the_field_named_and_nothing_recorded(db, settings, weights, overrides, field, message):
    with pytest.raises(Invalid, match=message) as caught:
        register(db, settings, weights, **overrides)
    assert caught.value.field == field
    assert versions(db) == 0


def test_weights_of_another_architecture_and_non_finite_outputs_are_refused(db, settings, weights, tmp_path):
    other = tmp_path / "other.pt"
    torch.save(support.build(width=0.5).state_dict(), other)
    with pytest.raises(Invalid, match="do not fit") as caught:
        register(db, settings, other)
    assert caught.value.field == "weights"
    broken = tmp_path / "nan.pt"
    state = torch.load(weights, weights_only=True)
    state["13.bias"] = torch.full_like(state["13.bias"], float("nan"))
    torch.save(state, broken)
    with pytest.raises(Invalid, match="non-finite"):
        register(db, settings, broken)
    assert versions(db) == 0


def test_an_onnx_file_is_adapted_to_logits_and_embedding_outputs(db, settings, weights, tmp_path):
    """A user's ONNX export with one output; the embedding is the head's input unless the user names another tensor."""
    import onnx

    path = tmp_path / "user.onnx"
    module = support.build()
    module.load_state_dict(torch.load(weights, weights_only=True))
    torch.onnx.export(module.eval(), (torch.zeros(1, 3, 48, 48),), str(path), dynamo=False, input_names=["x"],
                      output_names=["scores"], dynamic_axes={"x": {0: "n"}, "scores": {0: "n"}})  # fmt: skip
    hidden = [n.output[0] for n in onnx.load(str(path)).graph.node if n.op_type == "Relu"][-1]
    assert last_linear_input(onnx.load(str(path)).graph, "scores") == hidden  # what registration logs by default
    with pytest.raises(Invalid, match="not a tensor of the graph") as caught, db.session() as session:
        register_onnx_model(session, settings.data_dir, "shapes", support.CLASS_NAMES, "v1", path, support.INPUT_SPEC,
                            embedding_output="no_such_tensor")  # fmt: skip
    assert caught.value.field == "embedding_output" and versions(db) == 0
    with db.session() as session:
        row = register_onnx_model(session, settings.data_dir, "shapes", support.CLASS_NAMES, "v1", path, support.INPUT_SPEC)
        assert row.embedding_dim == 32 and row.report["retrainable"] is False
        artifact = settings.data_dir / row.artifact_path
    inputs = InputSpec.from_dict(support.INPUT_SPEC).from_uint8(support.render(5, 4)[0])
    with torch.no_grad():
        expected = module(torch.from_numpy(inputs)).numpy()
    assert np.abs(OnnxClassifier(artifact).predict(inputs).logits - expected).max() < 1e-3


def test_preprocessing_order_is_resize_then_channel_order_then_range_then_mean_std():
    from PIL import Image

    spec = InputSpec.from_dict({"shape": [3, 2, 2], "channel_order": "bgr", "scale": "0..255",
                                "mean": [10, 20, 30], "std": [2, 4, 5]})  # fmt: skip
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[..., 0], pixels[..., 2] = 200, 50  # red 200, blue 50
    out = spec.model_input(Image.fromarray(pixels))
    assert out.shape == (3, 2, 2)
    assert np.allclose(out[0], (50 - 10) / 2) and np.allclose(out[1], (0 - 20) / 4) and np.allclose(out[2], (200 - 30) / 5)
    for bad, field in (({"shape": ["a", 2, 2]}, "input_spec.shape"), ({"shape": [3, 2, 2], "mean": "x"}, "input_spec.mean"),
                       ({"shape": [3, 2, 2], "std": [1, 2]}, "input_spec.std"), ({"resize": "zoom"}, "input_spec.resize")):  # fmt: skip
        with pytest.raises(Invalid) as caught:
            InputSpec.from_dict(bad)
        assert caught.value.field == field
    legacy = InputSpec.from_dict({"shape": [1, 32, 32], "dtype": "float32", "scale": "0..1", "format": "png-grayscale"})
    assert (legacy.channel_order, legacy.mean, legacy.std) == ("gray", (0.0,), (1.0,))


def test_the_gateway_applies_the_declared_preprocessing_to_png_and_json_bodies(db, settings, weights, api):
    from PIL import Image

    from shiftwatch.collector.inputs import InputStore
    from shiftwatch.collector.tables import Prediction

    _, _, spec, _, artifact, _ = register(db, settings, weights)
    images, _ = support.render(9, 4)
    expected = OnnxClassifier(settings.data_dir / artifact).predict(InputSpec.from_dict(spec).from_uint8(images))
    for i, pixels in enumerate(images):
        response = api.post("/v1/models/shapes/predict", content=support.png(pixels), headers={"content-type": "image/png"})
        assert response.status_code == 200, response.text
        assert np.abs(np.array(response.json()["probabilities"]) - expected.probabilities[i]).max() < 1e-4
    # JSON is pixels in 0..1 at the model's size (RGB, before normalisation); the store keeps those pixels.
    pixels = np.random.default_rng(1).random((3, 48, 48)).round(3)
    response = api.post("/v1/models/shapes/predict", json=pixels.tolist(), headers={"x-request-id": "json-1"})
    assert response.status_code == 200, response.text
    want = OnnxClassifier(settings.data_dir / artifact).predict(InputSpec.from_dict(spec).normalise(pixels[None]))
    assert np.abs(np.array(response.json()["probabilities"]) - want.probabilities[0]).max() < 1e-4
    assert api.app.state.gateway.writer.flush()
    with db.session() as session:
        ref = session.scalar(select(Prediction.input_ref).where(Prediction.request_id == "json-1"))
    stored = np.asarray(Image.open(io.BytesIO(InputStore(settings.data_dir).get(ref))), np.float32) / 255
    assert np.abs(stored.transpose(2, 0, 1) - pixels).max() <= 1 / 255 + 1e-6
    wrong = api.post("/v1/models/shapes/predict", json=np.zeros((1, 48, 48)).tolist())
    assert wrong.status_code == 422 and "[3, 48, 48]" in wrong.text


def test_a_model_onnx_cannot_export_is_refused_in_one_line_naming_the_factory(db, settings, weights):
    """AdaptiveAvgPool2d(3) over a 5x5 map (a 40x40 input) runs in PyTorch but has no ONNX export: no traceback."""
    spec = {**support.INPUT_SPEC, "shape": [3, 40, 40]}
    with pytest.raises(Invalid, match="cannot be exported to ONNX") as caught:
        register(db, settings, weights, input_spec=spec)
    assert caught.value.field == "factory" and "\n" not in str(caught.value)
    assert versions(db) == 0
