"""Retraining end to end on both backends: candidate registration, run records, the gate, bad inputs."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy import func, select

torch = pytest.importorskip("torch")
# The imports below load torch: after the skip, hence their E402 noqa.
from shiftwatch.collector import registry  # noqa: E402
from shiftwatch.collector.tables import ModelVersion  # noqa: E402
from shiftwatch.db import Database  # noqa: E402
from shiftwatch.errors import Invalid, NotFound  # noqa: E402
from shiftwatch.examples import digits, digits_cnn  # noqa: E402
from shiftwatch.retrain.budget import Budget, Recipe, pareto_flags  # noqa: E402
from shiftwatch.retrain.candidate import package, register  # noqa: E402
from shiftwatch.retrain.compress import CompressConfig  # noqa: E402
from shiftwatch.retrain.pipeline import RetrainConfig, bootstrap, retrain  # noqa: E402
from shiftwatch.retrain.tables import Artifact, TrainingRun  # noqa: E402
from shiftwatch.retrain.torch_contract import ContractModel  # noqa: E402
from shiftwatch.retrain.trainer import TrainConfig, fit  # noqa: E402
from shiftwatch.retrain.training import GateConfig, LabeledData  # noqa: E402
from shiftwatch.settings import Settings  # noqa: E402

FAST = RetrainConfig(
    finetune=TrainConfig(epochs=2, lr=1e-3), compress=CompressConfig(steps=("ptq",)), latency_repeats=3
)


@pytest.fixture(scope="module")
def trained() -> ContractModel:
    """The example CNN from its contract's factory, as the demo registers it; 4 epochs keep this file fast."""
    splits = digits.split_digits(0)
    model = digits_cnn.family().new_model(0)
    fit(model, splits.train.images, splits.train.labels, TrainConfig(epochs=4, seed=0))
    return model


@pytest.fixture
def production(db: Database, settings: Settings, trained: ContractModel) -> ModelVersion:
    """digits v1 in production, with its ONNX artifact and torch weights stored (as bootstrap leaves it)."""
    splits = digits.split_digits(0)
    packaged = package(
        trained, settings.data_dir, family=digits_cnn.family(), train=(splits.train.images, splits.train.labels),
        evaluation=(splits.val.images, splits.val.labels), calibration=splits.train.images,
        train_config=TrainConfig(), compress_config=CompressConfig(steps=()), latency_repeats=3,
    )  # fmt: skip
    with db.session() as session:
        registry.register_model(session, "digits", digits.CLASS_NAMES)
        return register(session, settings.data_dir, "digits", packaged, packaged.report, state="production", version="v1")


def rotated_samples(n: int = 240) -> LabeledData:
    """Production drifted: the camera is rotated (severity 3, about 30 degrees)."""
    splits = digits.split_digits(0)
    rng = np.random.default_rng(7)
    index = rng.choice(len(splits.train), size=n, replace=False)
    images = digits.corrupt(splits.train.images[index], "rotation", 3, rng)
    ids = tuple(f"00000000-0000-0000-0000-{i:012d}" for i in range(n))
    return LabeledData(images, splits.train.labels[index], rng.uniform(0, 14, size=n), ids)


def count(db: Database, table) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def log_and_label(db: Database, settings: Settings, labeled: LabeledData) -> None:
    """Production serves the drifted images through ONNX Runtime, logs them, and the labeling queue gets them labeled."""
    from shiftwatch.collector.inputs import InputStore
    from shiftwatch.labeling.oracle import label_with_oracle
    from shiftwatch.labeling.policy import enqueue
    from shiftwatch.retrain.runtime import OnnxClassifier
    from shiftwatch_client.records import PredictionRecord
    from tests.support.collector import store_predictions

    store = InputStore(settings.data_dir)
    with db.session() as session:
        v1 = registry.get_version(session, "digits", "v1")
    out = OnnxClassifier(settings.data_dir / v1.artifact_path).predict(labeled.images)
    truth, records = {}, []
    for i, image in enumerate(labeled.images):
        ref = store.put(digits.encode_png(image), "png")
        truth[ref] = int(labeled.labels[i])
        records.append(PredictionRecord(
            model="digits", version="v1", predicted_class=int(out.predicted_class[i]), confidence=float(out.confidence[i]),
            embedding=out.embeddings[i], probabilities=out.probabilities[i], input_ref=ref,
        ))  # fmt: skip
    store_predictions(db, settings, records)
    with db.session() as session:
        enqueue(session, v1.id, [r.id for r in records], "random")
        assert label_with_oracle(session, "digits", lambda ref: truth[ref]) == len(records)


def drifted_and_labeled(db: Database, settings: Settings) -> LabeledData:
    """Rotated production images served, logged and labeled, read back as retraining reads them."""
    from shiftwatch.retrain.labeled import labeled_data

    log_and_label(db, settings, rotated_samples())
    with db.session() as session:
        return labeled_data(session, settings.data_dir, "digits")


def assert_quantization_recorded(report: dict) -> None:
    """PTQ was tried first; the shipped artifact and the recorded outcome say the same thing."""
    quantization = report["compression"]["quantization"]
    assert quantization["attempts"][0]["recipe"] == "ptq"
    if quantization["outcome"].startswith("int8"):
        assert report["compression_steps"][-1] == "ptq" and report["quantized_parity"]["ok"]
        assert quantization["attempts"][-1]["parity_ok"]
    else:  # int8 declined on this CPU: the fp32 artifact ships and the gate judged it
        assert report["compression_steps"] == [] and report["quantized_parity"] is None
        assert len(quantization["attempts"]) == 2 and not quantization["attempts"][-1]["parity_ok"]


@pytest.mark.slow
def test_labeled_drift_samples_become_a_candidate_that_recovers_accuracy(
    db: Database, settings: Settings, production: ModelVersion
) -> None:
    labeled = drifted_and_labeled(db, settings)
    assert len(labeled) == 240 and len(set(labeled.ids)) == 240
    outcome = retrain(db, settings.data_dir, "digits", labeled, FAST)
    assert outcome.status == "succeeded" and outcome.version == "v2"
    assert outcome.gate is not None and outcome.gate.new_candidate > outcome.gate.new_base + 0.1
    with db.session() as session:
        row = registry.get_version(session, "digits", "v2")
        run = session.get(TrainingRun, outcome.run_id)
        assert row.state == "candidate" and row.embedding_dim == 64
        artifact = settings.data_dir / row.artifact_path  # registry paths are relative to data_dir
        assert row.artifact_sha256 == hashlib.sha256(artifact.read_bytes()).hexdigest()
        assert row.input_spec["shape"] == [1, 32, 32]
        report = row.report
        assert set(report["latency_ms"]) == {"batch1", "batch32"}
        assert {"p50_ms", "p99_ms"} <= set(report["latency_ms"]["batch32"])
        assert report["size_bytes"] == artifact.stat().st_size
        assert_quantization_recorded(report)
        assert report["parity"]["ok"] and report["accuracy_old"] > 0.85 and report["accuracy_new"] > report["gate"]["accuracy_new"]["production"]
        weights = settings.data_dir / report["weights_path"]
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == report["weights_sha256"]
        assert run is not None and run.status == "succeeded" and run.candidate_version_id == row.id
        assert run.labeled_snapshot_sha256 == labeled.snapshot_sha256()
        assert run.hyperparameters["seed"] == 0 and run.duration_s is not None and run.duration_s > 0
        assert run.data_snapshot["labeled"] == 240 and run.artifact_sha256 == row.artifact_sha256
        assert session.get(Artifact, row.artifact_sha256) is not None


@pytest.mark.slow
def test_an_int8_artifact_that_misses_the_agreement_bar_ships_fp32_and_the_run_says_why(
    db: Database, settings: Settings, production: ModelVersion
) -> None:
    """No CPU meets an agreement of 1.01: PTQ, then QAT, are tried and declined; the run still succeeds."""
    labeled = drifted_and_labeled(db, settings)
    config = replace(FAST, compress=replace(FAST.compress, quantized_min_agreement=1.01))
    outcome = retrain(db, settings.data_dir, "digits", labeled, config)
    assert outcome.status == "succeeded", outcome.report.get("gate")
    quantization = outcome.report["compression"]["quantization"]
    assert [a["recipe"] for a in quantization["attempts"]] == ["ptq", "qat+ptq"]
    assert quantization["outcome"].startswith("fp32: int8 declined") and "needed 1.01" in quantization["outcome"]
    assert outcome.report["compression_steps"] == [] and outcome.report["quantized_parity"] is None
    with db.session() as session:
        row = registry.get_version(session, "digits", outcome.version)
        run = session.get(TrainingRun, outcome.run_id)
        assert run is not None and run.metrics["compression"]["quantization"] == quantization
        artifact = settings.data_dir / row.artifact_path
    ops = {node.op_type for node in __import__("onnx").load(artifact).graph.node}
    assert "QLinearConv" not in ops and "QuantizeLinear" not in ops  # the fp32 graph shipped


def test_a_candidate_failing_the_gate_is_recorded_as_rejected_and_not_registered(
    db: Database, settings: Settings, production: ModelVersion
) -> None:
    # No candidate gains 90 points; one epoch is enough to find that out.
    config = replace(FAST, finetune=TrainConfig(epochs=1, lr=1e-3), gate=GateConfig(min_new_gain=0.9))
    outcome = retrain(db, settings.data_dir, "digits", rotated_samples(60), config)
    assert outcome.status == "rejected" and outcome.version is None
    with db.session() as session:
        assert [v.version for v in registry.list_versions(session, "digits")] == ["v1"]
        run = session.get(TrainingRun, outcome.run_id)
        assert run is not None and run.status == "rejected" and "gains" in (run.error or "")
        assert session.get(Artifact, run.artifact_sha256) is not None  # its files are on record


@pytest.mark.slow
def test_a_rejected_run_says_that_int8_fell_back_to_fp32(db: Database, settings: Settings, production: ModelVersion) -> None:
    """The gate said no to an fp32 artifact because PTQ and QAT both missed the bar: the run and the CLI say both."""
    from shiftwatch.retrain.cli import _summary

    config = replace(FAST, finetune=TrainConfig(epochs=1, lr=1e-3), gate=GateConfig(min_new_gain=0.9),
                     compress=replace(FAST.compress, quantized_min_agreement=1.01))  # fmt: skip
    outcome = retrain(db, settings.data_dir, "digits", rotated_samples(60), config)
    assert outcome.status == "rejected"
    with db.session() as session:
        run = session.get(TrainingRun, outcome.run_id)
        assert run is not None and "gains" in (run.error or "")
        assert "the gate judged the fp32 artifact (fp32: int8 declined after ptq (" in (run.error or "")
        assert ") and qat+ptq (top-1 agreement" in (run.error or "")
    assert _summary(outcome)["quantization"].startswith("fp32: int8 declined after ptq")


def test_no_labeled_data_is_a_clear_error_and_writes_nothing(
    db: Database, settings: Settings, production: ModelVersion
) -> None:
    empty = LabeledData.from_arrays(np.zeros((0, 1, 32, 32), np.float32), np.zeros(0, np.int64))
    with pytest.raises(Invalid, match="no labeled samples for model 'digits'"):
        retrain(db, settings.data_dir, "digits", empty, FAST)
    assert count(db, TrainingRun) == 0


def test_unknown_model_is_not_found_and_writes_nothing(db: Database, settings: Settings) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        retrain(db, settings.data_dir, "nope", rotated_samples(10), FAST)
    assert count(db, TrainingRun) == 0


def test_a_production_version_without_torch_weights_cannot_be_fine_tuned(
    db: Database, settings: Settings, digits_model: ModelVersion
) -> None:
    with pytest.raises(Invalid, match="no torch weights"):
        retrain(db, settings.data_dir, "digits", rotated_samples(10), FAST)
    assert count(db, TrainingRun) == 0


@pytest.mark.slow
def test_bootstrap_registers_the_reference_model_in_production_once(db: Database, settings: Settings) -> None:
    reference = TrainConfig(epochs=1)
    first = bootstrap(db, settings.data_dir, "digits", digits.CLASS_NAMES, digits_cnn.family(), FAST, reference=reference)
    assert first.status == "production" and first.version == "v1"
    with db.session() as session:
        row = registry.get_version(session, "digits", "v1")
        assert row.artifact_sha256 == hashlib.sha256((settings.data_dir / row.artifact_path).read_bytes()).hexdigest()
        assert count(db, Artifact) == 2  # the ONNX model and the torch weights
    state = torch.load(settings.data_dir / first.report["weights_path"], weights_only=True)
    assert set(state) >= {"conv1.weight", "embed.weight", "head.weight"}


def test_recent_production_inputs_come_back_as_images_for_calibration(
    db: Database, settings: Settings, digits_model: ModelVersion
) -> None:
    from shiftwatch.collector.inputs import InputStore
    from shiftwatch.retrain.labeled import recent_inputs
    from shiftwatch_client.records import PredictionRecord
    from tests.support.collector import store_predictions

    images = digits.split_digits(0).test.images[:5]
    store = InputStore(settings.data_dir)
    records = [
        PredictionRecord(
            model="digits", version="v1", predicted_class=0, confidence=0.9,
            embedding=np.zeros(64, np.float32), input_ref=store.put(digits.encode_png(image), "png"),
        )
        for image in images
    ]
    records.append(PredictionRecord(model="digits", version="v1", predicted_class=1, confidence=0.5, embedding=np.zeros(64, np.float32)))
    store_predictions(db, settings, records)
    with db.session() as session:
        got = recent_inputs(session, settings.data_dir, digits_model.id, limit=10)
    assert got.shape == (5, 1, 32, 32)  # the prediction without a stored input is skipped
    for image in got:  # each is one of the logged images, up to 8-bit PNG rounding
        assert min(np.abs(image - original).max() for original in images) < 1 / 255


# fp32, int8 and a pruned int8 student: three sizes, so a size budget between them has something to choose.
BUDGET_GRID = (Recipe("fp32", ()), Recipe("int8", ("ptq",)), Recipe("prune 0.5 + int8", ("prune", "ptq"), keep_fraction=0.5))


@pytest.mark.slow
def test_a_budget_registers_the_most_accurate_candidate_within_it(db: Database, settings: Settings, production: ModelVersion) -> None:
    fp32_mb = production.report["size_bytes"] / 1e6
    budget = Budget(latency_ms=1000.0, size_mb=round(fp32_mb * 0.6, 4))  # every int8 artifact fits, fp32 does not
    config = replace(FAST, budget=budget, budget_grid=BUDGET_GRID,
                     compress=replace(FAST.compress, prune=replace(FAST.compress.prune, finetune_epochs=1)))
    outcome = retrain(db, settings.data_dir, "digits", drifted_and_labeled(db, settings), config)
    found = outcome.report["budget_search"]
    rows = {row["recipe"]: row for row in found["candidates"]}
    assert set(rows) == {"fp32", "int8", "prune 0.5 + int8"} and not found["skipped"]
    assert not rows["fp32"]["fits"] and rows["fp32"]["misses"][0].endswith(f"> {budget.size_mb:g} MB")
    fitting = [row for row in rows.values() if row["fits"]]
    assert fitting and found["chosen"] == max(fitting, key=lambda r: (r["accuracy"], -r["latency_ms"]))["recipe"]
    assert rows["prune 0.5 + int8"]["size_mb"] < rows["int8"]["size_mb"] < rows["fp32"]["size_mb"]
    flags = pareto_flags([(r["accuracy"], r["latency_ms"], r["size_mb"]) for r in found["candidates"]])
    assert [r["pareto"] for r in found["candidates"]] == flags and any(flags)
    assert outcome.status == "succeeded", outcome.gate
    with db.session() as session:
        row = registry.get_version(session, "digits", outcome.version or "")
        assert row.report["size_bytes"] <= budget.size_mb * 1e6
        assert row.report["compression_steps"] == list(rows[found["chosen"]]["steps_applied"])
        assert row.report["budget_search"]["chosen"] == found["chosen"]


def test_nothing_within_budget_is_a_recorded_refusal_naming_the_closest_candidate(
    db: Database, settings: Settings, production: ModelVersion
) -> None:
    config = replace(FAST, budget=Budget(size_mb=0.001), budget_grid=BUDGET_GRID[:2])
    outcome = retrain(db, settings.data_dir, "digits", drifted_and_labeled(db, settings), config)
    assert outcome.status == "rejected" and outcome.version is None
    refusal = outcome.report["budget_refusal"]
    assert "no candidate fits the budget size_mb=0.001" in refusal and "the closest, 'int8'" in refusal, refusal
    with db.session() as session:
        assert [v.version for v in registry.versions_in_state(session, "digits", "candidate")] == []
        run = session.get(TrainingRun, outcome.run_id)
        assert run is not None and run.status == "rejected" and run.error == refusal and run.compress_steps == ["budget"]
