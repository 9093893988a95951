"""An ONNX-only model (no torch anywhere): a graph that ends in a softmax, registered again, and its int8 candidate.

The graph (``tests/support/softmax_graph.py``) has an input called ``pixels``, opset 11 and
one output that is already probabilities, as many exported classifiers do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from sqlalchemy import func, select

from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion, Prediction
from shiftwatch.errors import Invalid
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.int8_candidate import Int8Bar, judge_int8, quantize_version
from shiftwatch.retrain.onnx_contract import last_linear_input
from shiftwatch.retrain.own_model import register_onnx_model
from shiftwatch.retrain.runtime import OnnxClassifier
from shiftwatch.retrain.tables import TrainingRun
from shiftwatch.retrain.training import LabeledData
from tests.support import softmax_graph as colours
from tests.support.command_line import cli, cli_process
from tests.support.rollout import post_and_drain

SPEC = InputSpec.from_dict(colours.INPUT_SPEC)
REGISTER = ("retrain", "register", "--model", "colours", "--classes", ",".join(colours.CLASS_NAMES),
            "--input-spec", json.dumps(colours.INPUT_SPEC), "--embedding-output", "hidden")  # fmt: skip


def versions(db) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(ModelVersion.version)))


def register_v1(db, settings, graph: Path) -> ModelVersion:
    with db.session() as session:
        return register_onnx_model(session, settings.data_dir, "colours", colours.CLASS_NAMES, "v1", graph, colours.INPUT_SPEC,
                                   logits_output="prob", embedding_output="hidden", outputs="probabilities")  # fmt: skip


def serve(api, seed: int, n: int, prefix: str) -> tuple[np.ndarray, list[dict]]:
    images, _ = colours.render(seed, n)
    headers = [{"x-request-id": f"{prefix}-{i}", "x-client-key": f"{prefix}-{i}"} for i in range(n)]
    return images, post_and_drain(api, "colours", [colours.png(pixels) for pixels in images], headers)


def graph_probabilities(graph: Path, images: np.ndarray) -> np.ndarray:
    """What the user's graph itself answers, run by ONNX Runtime outside shiftwatch."""
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    return session.run(["prob"], {"pixels": SPEC.from_uint8(images)})[0]


def test_a_softmax_output_registered_as_logits_is_refused_naming_the_flag(db, settings, tmp_path):
    graph = colours.build(tmp_path / "colours.onnx")
    result = cli_process(settings, *REGISTER, "--onnx", str(graph))
    assert result.returncode == 2, result.stderr
    assert "--outputs probabilities" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    plain = colours.build(tmp_path / "scores.onnx", softmax=False)  # real logits declared as probabilities
    result = cli_process(settings, *REGISTER, "--onnx", str(plain), "--outputs", "probabilities")
    assert result.returncode == 2 and "is not probabilities" in result.stderr, result.stderr
    assert versions(db) == []


def test_with_outputs_probabilities_the_gateway_serves_the_graphs_own_probabilities(db, settings, api, tmp_path):
    graph = colours.build(tmp_path / "colours.onnx")
    result = cli(settings, *REGISTER, "--onnx", str(graph), "--outputs", "probabilities")
    assert result.exit_code == 0, result.output
    with db.session() as session:
        v1 = registry.get_version(session, "colours", "v1")
        assert v1.report["contract"]["outputs"] == "probabilities"
    images, answers = serve(api, 1, 40, "clean")
    served = np.array([answer["probabilities"] for answer in answers])
    expected = graph_probabilities(graph, images)
    assert np.abs(served - expected).max() < 1e-4  # not softmax(probabilities), which caps 3 classes at 0.58
    assert [a["class"] for a in answers] == expected.argmax(1).tolist()
    with db.session() as session:
        logged = sorted(session.scalars(select(Prediction.confidence)))
    assert len(logged) == 40 and np.abs(np.array(logged) - np.sort(expected.max(1))).max() < 1e-4
    assert logged[-1] > 0.9


def test_a_graph_shiftwatch_wrote_registers_again_as_a_new_version(db, settings, tmp_path):
    graph = colours.build(tmp_path / "colours.onnx")
    stored = settings.data_dir / register_v1(db, settings, graph).artifact_path
    again = tmp_path / "exported.onnx"  # the artifact as a user downloads it and registers it again
    again.write_bytes(stored.read_bytes())
    result = cli(settings, *REGISTER, "--onnx", str(again), "--version", "v2", "--logits-output", "prob", "--outputs", "probabilities")
    assert result.exit_code == 0, result.output
    with db.session() as session:
        for version, names in (("v3", {}), ("v4", {"logits_output": "logits", "embedding_output": "embedding"})):
            register_onnx_model(session, settings.data_dir, "colours", colours.CLASS_NAMES, version, again, colours.INPUT_SPEC, **names)
        rows = {v: registry.get_version(session, "colours", v) for v in ("v1", "v2", "v3", "v4")}
        paths = {v: settings.data_dir / row.artifact_path for v, row in rows.items()}
        assert [rows[v].state for v in ("v2", "v3", "v4")] == ["candidate"] * 3
    images, _ = colours.render(2, 32)
    expected = graph_probabilities(graph, images)
    for version, path in paths.items():
        output = OnnxClassifier(path).predict(SPEC.from_uint8(images))
        assert np.abs(output.probabilities - expected).max() < 1e-5, version
        assert output.embeddings.shape == (32, 8), version


def test_an_onnx_only_model_gets_an_int8_candidate_calibrated_on_its_stored_inputs(db, settings, api, tmp_path):
    graph = colours.build(tmp_path / "colours.onnx")
    register_v1(db, settings, graph)
    too_few = cli_process(settings, "retrain", "quantize", "--model", "colours")
    assert too_few.returncode == 2 and "stored inputs" in too_few.stderr, too_few.stderr
    serve(api, 3, 80, "traffic")
    result = cli(settings, "retrain", "quantize", "--model", "colours", "--allow-slower")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["status"], out["version"], out["base_version"]) == ("succeeded", "v2", "v1")
    assert out["quantization"]["top1_agreement"] >= 0.97 and out["quantization"]["stored_inputs"] == 80
    assert set(out["latency_cpu_ms"]) == {"batch1", "batch32"} and out["latency_cpu_ms"]["batch1"]["int8"] > 0
    with db.session() as session:
        v2 = registry.get_version(session, "colours", "v2")
        run = session.scalars(select(TrainingRun)).one()
        assert v2.state == "candidate" and v2.report["contract"]["outputs"] == "probabilities"
        assert v2.report["compression_steps"] == ["ptq"] and v2.input_spec == registry.get_version(session, "colours", "v1").input_spec
        assert (run.status, run.candidate_version_id, run.compress_steps) == ("succeeded", v2.id, ["ptq"])
        int8_path = settings.data_dir / v2.artifact_path
    model = onnx.load(str(int8_path))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} & ops
    assert "Softmax" in ops and "QLinearSoftmax" not in ops  # the probabilities stay float, not 1/255 steps
    assert next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")) >= 13
    fresh, _ = colours.render(4, 64)
    int8 = OnnxClassifier(int8_path).predict(SPEC.from_uint8(fresh)).probabilities
    fp32 = graph_probabilities(graph, fresh)
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.97 and np.abs(int8 - fp32).max() < 0.1
    again = cli_process(settings, "retrain", "quantize", "--model", "colours", "--version", "v2")
    assert again.returncode == 2 and "already int8" in again.stderr


def test_int8_that_misses_the_bar_is_declined_and_the_run_says_why(db, settings, api, tmp_path):
    register_v1(db, settings, colours.build(tmp_path / "colours.onnx"))
    serve(api, 5, 40, "traffic")
    outcome = quantize_version(db, settings.data_dir, "colours", bar=Int8Bar(min_agreement=1.01, allow_slower=True), latency_repeats=3)
    assert outcome.status == "rejected" and outcome.version is None
    assert "needs 1.01" in outcome.reasons[0] and outcome.report["quantization"]["outcome"].startswith("fp32")
    assert versions(db) == ["v1"]
    with db.session() as session:
        run = session.scalars(select(TrainingRun)).one()
        assert run.status == "rejected" and "needs 1.01" in (run.error or "") and run.candidate_version_id is None
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1


def test_int8_slower_than_fp32_is_declined_unless_allowed():
    fp32 = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]] * 5
    latency = {"batch1": {"baseline_ms": 0.1, "candidate_ms": 0.16, "ratio": 1.6},
               "batch32": {"baseline_ms": 1.0, "candidate_ms": 0.9, "ratio": 0.9}}  # fmt: skip
    empty = LabeledData.from_arrays(np.zeros((0, 3, 12, 12), np.float32), np.zeros(0, np.int64))
    evidence, reasons = judge_int8(fp32, fp32, empty, latency, Int8Bar())
    assert evidence["int8_slower"] and len(reasons) == 1 and "1.60x fp32's CPU time at batch 1" in reasons[0]
    assert judge_int8(fp32, fp32, empty, latency, Int8Bar(allow_slower=True))[1] == []
    labeled = LabeledData.from_arrays(np.zeros((2, 3, 12, 12), np.float32), np.array([0, 1]))
    worse = np.concatenate([fp32, np.eye(3, dtype=np.float32)[[1, 0]]])  # int8 gets both labeled samples wrong
    both = np.concatenate([fp32, np.eye(3, dtype=np.float32)[[0, 1]]])
    evidence, reasons = judge_int8(both, worse, labeled, {}, Int8Bar())
    assert evidence["accuracy_fp32"] == 1.0 and evidence["accuracy_int8"] == 0.0
    assert any("loses 100.0 points on 2 labeled samples" in reason for reason in reasons)


def test_an_unknown_outputs_value_is_refused_and_an_opset_9_graph_is_adapted(db, settings, tmp_path):
    with pytest.raises(Invalid) as caught, db.session() as session:
        register_onnx_model(session, settings.data_dir, "colours", colours.CLASS_NAMES, "v1", colours.build(tmp_path / "c.onnx"),
                            colours.INPUT_SPEC, embedding_output="hidden", outputs="softmax")  # fmt: skip
    assert caught.value.field == "outputs"
    old = colours.build(tmp_path / "old.onnx", opset=9)  # Clip takes its floor as an attribute before opset 11
    with db.session() as session:
        row = register_onnx_model(session, settings.data_dir, "colours", colours.CLASS_NAMES, "v1", old, colours.INPUT_SPEC,
                                  embedding_output="hidden", outputs="probabilities")  # fmt: skip
        path = settings.data_dir / row.artifact_path
    images, _ = colours.render(6, 16)
    assert np.abs(OnnxClassifier(path).predict(SPEC.from_uint8(images)).probabilities - graph_probabilities(old, images)).max() < 1e-5


def test_a_channels_last_graph_takes_channels_first_images_like_every_other(db, settings, tmp_path):
    """A graph exported from TensorFlow takes (N, H, W, C); registration puts a Transpose in front of it."""
    graph = colours.build(tmp_path / "nhwc.onnx", channels_last=True)
    with db.session() as session:
        row = register_onnx_model(session, settings.data_dir, "colours", colours.CLASS_NAMES, "v1", graph, colours.INPUT_SPEC,
                                  logits_output="prob", embedding_output="hidden", outputs="probabilities")  # fmt: skip
        path = settings.data_dir / row.artifact_path
    images, _ = colours.render(7, 16)
    inputs = SPEC.from_uint8(images)
    classifier = OnnxClassifier(path)
    assert classifier.input_shape == [None, 3, colours.SIDE, colours.SIDE]
    own = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).run(["prob"], {"pixels": inputs.transpose(0, 2, 3, 1)})[0]
    assert np.abs(classifier.predict(inputs).probabilities - own).max() < 1e-5


def test_int8_for_a_provider_this_install_lacks_is_refused_naming_the_flavour(db, settings, api, tmp_path):
    register_v1(db, settings, colours.build(tmp_path / "colours.onnx"))
    serve(api, 9, 80, "traffic")
    for provider, flavour in (("openvino", "shiftwatch[openvino]"), ("tensorrt", "shiftwatch[gpu]")):
        refused = cli_process(settings, "retrain", "quantize", "--model", "colours", "--provider", provider)
        assert refused.returncode == 2 and flavour in refused.stderr and "timed on" in refused.stderr, refused.stderr
    unknown = cli_process(settings, "retrain", "quantize", "--model", "colours", "--provider", "tpu")
    assert unknown.returncode == 2 and "'tpu' is not an int8 target" in unknown.stderr, unknown.stderr
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(TrainingRun)) == 0  # nothing half-written


def test_a_graph_onnx_runtime_already_fused_is_refused_saying_what_to_quantize_instead(db, settings, api, tmp_path):
    from shiftwatch.retrain.export import optimize_onnx

    fused = optimize_onnx(colours.build(tmp_path / "colours.onnx"), tmp_path / "fused.onnx")  # Gemm + Relu -> FusedGemm
    register_v1(db, settings, fused)
    serve(api, 8, 40, "traffic")
    result = cli_process(settings, "retrain", "quantize", "--model", "colours")
    assert result.returncode == 2 and "FusedGemm" in result.stderr and "unoptimized export" in result.stderr, result.stderr
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(TrainingRun)) == 0


def test_without_embedding_output_the_input_of_the_last_gemm_is_logged(db, settings, tmp_path):
    """Like the torch default (the input of the last nn.Linear): a newcomer need not look up a tensor name."""
    graph = colours.build(tmp_path / "colours.onnx")
    assert last_linear_input(onnx.load(str(graph)).graph, "prob") == "hidden"  # through the Softmax, past Gemm w2
    with db.session() as session:
        version = register_onnx_model(session, settings.data_dir, "colours", colours.CLASS_NAMES, "v1", graph,
                                      colours.INPUT_SPEC, outputs="probabilities")  # fmt: skip
        assert version.embedding_dim == 8  # the hidden layer's width, not the 3 class scores
    headless = onnx.helper.make_graph([onnx.helper.make_node("Softmax", ["pixels"], ["prob"], axis=1)], "no_head",
                                      [onnx.helper.make_tensor_value_info("pixels", onnx.TensorProto.FLOAT, ["n", 3])],
                                      [onnx.helper.make_tensor_value_info("prob", onnx.TensorProto.FLOAT, ["n", 3])])  # fmt: skip
    assert last_linear_input(headless, "prob") is None
