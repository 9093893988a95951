"""Execution providers checked by where the nodes ran (ORT's profile), not by the names a session lists.

Each flavour runs in its own venv (tests/support/flavours.py): the GPU build on this CPU-only host
must refuse "cuda" and "tensorrt" instead of quietly running on the CPU; OpenVINO must run fp32 and
unfused QDQ int8 graphs entirely in OpenVINO with the CPU provider's answers, and refuse the
CPU-fused int8 graph whose QLinearConv/QGemm it leaves to the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from shiftwatch.errors import Invalid
from shiftwatch.retrain import placement
from shiftwatch.retrain.runtime import OnnxClassifier
from tests.support.conv_graph import build_all, images
from tests.support.flavours import probe

OPENVINO = "OpenVINOExecutionProvider"


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("graphs")
    batch = images(16, seed=9)
    np.save(folder / "images.npy", batch)
    return build_all(folder), folder / "images.npy", batch


def cpu_logits(model: Path, batch: np.ndarray) -> np.ndarray:
    return OnnxClassifier(model).run(batch).logits


def test_a_profile_counts_nodes_per_provider_and_the_check_names_what_ran_where(graphs) -> None:
    models, _, batch = graphs
    options = placement.profiled_options(ort.SessionOptions(), models["fp32"].parent)
    session = ort.InferenceSession(str(models["int8_fused"]), options, providers=[placement.CPU])
    measured = placement.measure(session, batch[:1])
    assert measured.nodes[placement.CPU] >= 4 and {"QLinearConv", "QGemm"} <= set(measured.ops[placement.CPU])
    placement.require(measured, [placement.CPU], [placement.CPU], "m.onnx")  # CPU asked, CPU ran: fine
    with pytest.raises(Invalid, match=r"could not start it here.*CPUExecutionProvider: \d+ nodes"):
        placement.require(measured, ["CUDAExecutionProvider", placement.CPU], [placement.CPU], "m.onnx")
    with pytest.raises(Invalid, match=r"took none of m\.onnx's nodes"):
        placement.require(measured, [OPENVINO, placement.CPU], [OPENVINO, placement.CPU], "m.onnx")
    partial = placement.Placement({OPENVINO: 2, placement.CPU: 3}, {OPENVINO: ("OpenVINO-EP-subgraph_1",),
                                                                     placement.CPU: ("QLinearConv", "Transpose")})
    with pytest.raises(Invalid, match=r"left QLinearConv of m\.onnx to the CPU"):
        placement.require(partial, [OPENVINO, placement.CPU], [OPENVINO, placement.CPU], "m.onnx")


def test_cpu_sessions_are_not_profiled(graphs) -> None:
    models, _, _ = graphs
    assert OnnxClassifier(models["fp32"]).placement is None


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_a_gpu_build_on_a_cpu_host_refuses_the_gpu_by_name_and_auto_runs_on_the_cpu(graphs, provider: str) -> None:
    models, batch_file, batch = graphs
    named = probe("gpu", models["fp32"], provider, batch_file)
    assert "CUDAExecutionProvider" in named["available"]  # the build offers it ...
    assert "could not start it here" in named["refused"] and "CPUExecutionProvider: 5 nodes" in named["refused"]
    auto = probe("gpu", models["fp32"], "auto", batch_file)  # ... auto takes what runs, and says so
    assert auto["registered"] == [placement.CPU] and set(auto["placement"]) == {placement.CPU}
    assert np.abs(np.array(auto["logits"]) - cpu_logits(models["fp32"], batch)).max() < 1e-4


@pytest.mark.slow
def test_openvino_runs_fp32_and_qdq_int8_entirely_and_refuses_the_cpu_fused_int8_graph(graphs) -> None:
    models, batch_file, batch = graphs
    # int8: OpenVINO and the CPU provider requantize each layer with their own rounding: under 0.05 where this was
    # written, 0.068 (8 output steps of 0.0085) on an AMD EPYC; the ResNet example's logits differ by 0.12-0.19.
    for name, tolerance in (("fp32", 1e-4), ("int8_qdq", 0.15)):
        ran = probe("openvino", models[name], "openvino", batch_file)
        assert set(ran["placement"]) == {OPENVINO}, (name, ran["placement"])
        logits = np.array(ran["logits"])
        assert np.abs(logits - cpu_logits(models[name], batch)).max() < tolerance, name
    fused = probe("openvino", models["int8_fused"], "openvino", batch_file)
    assert "left QGemm, QLinearConv of int8_fused.onnx to the CPU" in fused["refused"]


@pytest.mark.slow
def test_int8_quantized_for_openvino_keeps_the_qdq_graph_openvino_takes_whole(graphs, tmp_path: Path) -> None:
    """quantize_int8(target="openvino"): no CPU fusion, so the graph runs as one OpenVINO subgraph."""
    import onnx

    from shiftwatch.retrain.quantize import QuantizeConfig, quantize_int8

    models, batch_file, batch = graphs
    calibration = images(64, seed=3)
    for target, fused in (("cpu", True), ("openvino", False)):
        path = quantize_int8(models["fp32"], tmp_path / f"{target}.onnx", calibration, QuantizeConfig(target=target))
        ops = {node.op_type for node in onnx.load(str(path)).graph.node}
        assert ("QLinearConv" in ops) is fused and ("DequantizeLinear" in ops), (target, ops)
    ran = probe("openvino", tmp_path / "openvino.onnx", "openvino", batch_file)
    assert set(ran["placement"]) == {OPENVINO}, ran
    assert np.abs(np.array(ran["logits"]) - cpu_logits(tmp_path / "openvino.onnx", batch)).max() < 0.05


@pytest.mark.parametrize("intel", [True, False])
def test_auto_takes_openvino_on_intel_cpus_only(monkeypatch, intel: bool) -> None:
    from shiftwatch.retrain import runtime

    monkeypatch.setattr(runtime, "available_providers", lambda: ["openvino", "cpu"])
    monkeypatch.setattr(runtime, "intel_cpu", lambda: intel)
    expected = [OPENVINO, placement.CPU] if intel else [placement.CPU]
    assert runtime.resolve_providers("auto") == expected
    assert runtime.resolve_providers("openvino") == [OPENVINO, placement.CPU]  # asked by name: on any CPU


@pytest.mark.slow
@pytest.mark.parametrize("example", ["digits_cnn", "resnet_quarter"])
def test_the_example_models_run_whole_in_openvino_with_the_cpu_providers_answers(example: str, tmp_path: Path) -> None:
    """The digits CNN (1x32x32) and the ResNet-18/0.25 example (3x96x96), exported as the pipeline exports."""
    torch = pytest.importorskip("torch")  # the [train] extra: installed for the tests
    from shiftwatch.examples import digits_cnn, resnet
    from shiftwatch.retrain.export import export_onnx
    from shiftwatch.retrain.torch_contract import ContractModel

    torch.manual_seed(0)
    module, shape = (digits_cnn.build(), (1, 32, 32)) if example == "digits_cnn" else (resnet.build_quarter(), (3, 96, 96))
    model = export_onnx(ContractModel(module), tmp_path / f"{example}.onnx", input_shape=shape)
    batch = np.random.default_rng(5).uniform(0, 1, (8, *shape)).astype(np.float32)
    np.save(tmp_path / "images.npy", batch)
    ran = probe("openvino", model, "openvino", tmp_path / "images.npy")
    assert set(ran["placement"]) == {OPENVINO}, ran.get("refused") or ran["placement"]
    expected = cpu_logits(model, batch)
    difference = float(np.abs(np.array(ran["logits"]) - expected).max())
    print(f"{example}: max |logit difference| {difference:.2e} of max |logit| {np.abs(expected).max():.2f}")
    assert difference < 1e-3 * max(1.0, float(np.abs(expected).max()))
