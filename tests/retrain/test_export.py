"""ONNX export: two named outputs, dynamic batch, optimizations saved, parity that fails on a broken graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

torch = pytest.importorskip("torch")
# The imports below load torch: after the skip, hence their E402 noqa.
from shiftwatch.errors import Invalid, NotFound  # noqa: E402
from shiftwatch.examples.digits import split_digits  # noqa: E402
from shiftwatch.examples.digits_cnn import DigitsCNN  # noqa: E402
from shiftwatch.retrain.export import ParityError, check_parity, export_artifact  # noqa: E402
from shiftwatch.retrain.runtime import OnnxClassifier, resolve_providers  # noqa: E402
from shiftwatch.retrain.torch_contract import ContractModel  # noqa: E402
from shiftwatch.retrain.trainer import deterministic, predict  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    with deterministic(0):
        model = ContractModel(DigitsCNN((8, 16, 32))).eval()
    images = split_digits(0).val.images[:64]
    return model, export_artifact(model, tmp_path_factory.mktemp("export"), images), images


def test_export_has_image_input_logits_and_embedding_outputs_and_a_dynamic_batch(exported) -> None:
    _model, result, images = exported
    graph = onnx.load(result.path).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == ["logits", "embedding"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    classifier = OnnxClassifier(result.path)
    for batch in (1, 7, 33):
        out = classifier.run(images[:batch])
        assert out.logits.shape == (batch, 10) and out.embeddings.shape == (batch, 64)
        assert np.allclose(out.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert classifier.embedding_dim == 64 and classifier.num_classes == 10


def test_saved_artifact_holds_ort_fused_nodes(exported) -> None:
    _, result, _ = exported
    ops = {node.op_type for node in onnx.load(result.path).graph.node}
    assert "FusedConv" in ops and "Conv" not in ops  # Conv+Relu fused at save time, not at every load


def test_parity_matches_torch_on_real_inputs(exported) -> None:
    model, result, images = exported
    assert result.parity.ok and result.parity.top1_agreement == 1.0
    assert result.parity.max_abs_logit_diff < 1e-4
    _torch_logits, torch_embeddings = predict(model, images)
    out = OnnxClassifier(result.path).predict(images)
    assert np.abs(out.embeddings - torch_embeddings).max() < 1e-4


def test_parity_check_fails_on_perturbed_weights_in_the_graph(exported, tmp_path: Path) -> None:
    model, result, images = exported
    proto = onnx.load(result.path)
    for i, tensor in enumerate(proto.graph.initializer):
        if tensor.name.endswith("head.weight"):  # "module.head.weight": the contract wraps the network
            weights = numpy_helper.to_array(tensor).copy()
            weights[0] += 0.05  # one class's row nudged: answers mostly agree, logits do not
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(weights, tensor.name))
            break
    else:
        pytest.fail("head weight initializer not found")
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, broken)
    with pytest.raises(ParityError, match="parity check failed"):
        check_parity(model, broken, images)


def test_parity_check_refuses_an_empty_input_set(exported) -> None:
    model, result, images = exported
    with pytest.raises(ParityError):
        check_parity(model, result.path, images[:0])


def test_classifier_refuses_a_wrong_input_shape_and_a_non_model_file(exported, tmp_path: Path) -> None:
    _, result, _images = exported
    with pytest.raises(Invalid, match="shape"):
        OnnxClassifier(result.path).run(np.zeros((2, 1, 28, 28), np.float32))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx")
    with pytest.raises(Invalid, match="not a loadable ONNX model"):
        OnnxClassifier(garbage)
    with pytest.raises(NotFound):
        OnnxClassifier(tmp_path / "missing.onnx")


def test_providers_default_to_cpu_and_unknown_or_absent_ones_are_refused() -> None:
    assert resolve_providers(None) == ["CPUExecutionProvider"]
    assert resolve_providers("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(Invalid, match="unknown"):
        resolve_providers("tpu")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(Invalid, match="not available"):
            resolve_providers("cuda")
    else:
        assert resolve_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
