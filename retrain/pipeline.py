"""Retraining end to end: fine-tune production on reference + labeled data, compress, gate, register a candidate.

Input checks (model, production weights, labeled data, compression steps) run before
anything is written. After that every run has a ``training_runs`` row: ``succeeded`` with
its candidate, ``rejected`` when the evaluation gate said no (nothing registered), or
``failed`` with the error (a broken parity check, for one).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.db import Database
from shiftwatch.errors import Invalid
from shiftwatch.retrain.artifact_store import ArtifactStore
from shiftwatch.retrain.budget import DEFAULT_GRID, Budget, Recipe, SearchResult, search
from shiftwatch.retrain.candidate import PackagedModel, package, register
from shiftwatch.retrain.compress import CompressConfig, CompressionResult, StepProgress, compress, onnx_accuracy
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.contract_family import ContractFamily
from shiftwatch.retrain.model_contract import TorchContract
from shiftwatch.retrain.quantize import require_target
from shiftwatch.retrain.reference_set import is_loader
from shiftwatch.retrain.runs import finish_run
from shiftwatch.retrain.tables import TrainingRun
from shiftwatch.retrain.torch_contract import ContractModel
from shiftwatch.retrain.trainer import TrainConfig
from shiftwatch.retrain.trainer import accuracy as torch_accuracy
from shiftwatch.retrain.training import GateConfig, GateResult, LabeledData, MixPolicy, gate, mix, split_labeled


@dataclass(frozen=True, slots=True)
class RetrainConfig:
    seed: int = 0
    # Fine-tuning from production weights: a few epochs at a third of the from-scratch rate.
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, lr=1e-3))
    compress: CompressConfig = field(default_factory=CompressConfig)
    mix: MixPolicy = field(default_factory=MixPolicy)
    gate: GateConfig = field(default_factory=GateConfig)
    latency_repeats: int = 100
    # With a budget, ``compress.steps`` gives way to a recipe grid (retrain/budget.py): the most accurate
    # artifact within budget is the candidate.
    budget: Budget | None = None
    budget_grid: tuple[Recipe, ...] = DEFAULT_GRID

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "finetune": asdict(self.finetune),
            "compress": asdict(self.compress),
            "mix": asdict(self.mix),
            "gate": asdict(self.gate),
            "budget": asdict(self.budget) if self.budget else None,
            "budget_grid": [asdict(r) for r in self.budget_grid] if self.budget else None,
        }


@dataclass(frozen=True, slots=True)
class RetrainOutcome:
    run_id: int | None
    status: str
    version: str | None
    version_id: int | None
    gate: GateResult | None
    report: dict[str, Any]


def production_base(session: Session, data_dir: Path, model_name: str) -> tuple[ModelVersion, Path]:
    """The production version of ``model_name`` and its torch weights file (the fine-tuning start)."""
    production = registry.versions_in_state(session, model_name, "production")
    if not production:
        raise Invalid("model", f"{model_name!r} has no production version to fine-tune from")
    base = production[-1]
    weights = base.report.get("weights_path") if base.report else None
    if not weights or not ArtifactStore(data_dir).resolve(weights).is_file():
        raise Invalid(
            "model",
            f"production version {base.version!r} of {model_name!r} has no torch weights to fine-tune "
            "(an ONNX-only model is served, quantized and rolled out but not retrained: "
            f"`shiftwatch retrain quantize --model {model_name}` makes its int8 candidate; register a PyTorch "
            "factory + weights to retrain, see docs/own-model.md)",
        )
    return base, ArtifactStore(data_dir).resolve(weights)


def fallback_note(report: dict[str, Any]) -> list[str]:
    """The int8 outcome when int8 was declined (the fp32 artifact is what the gate judged), else nothing."""
    outcome = ((report.get("compression") or {}).get("quantization") or {}).get("outcome") or ""
    return [f"the gate judged the fp32 artifact ({outcome})"] if outcome.startswith("fp32") else []


def family_for(base: ModelVersion, data_dir: Path, reference_set: Path | None = None) -> ContractFamily:
    """The model the version was registered as: its contract (factory, trainer, reference set) and preprocessing.

    A registered reference set is the artifact store's copy (a path relative to ``data_dir``;
    versions registered before it was copied name the user's file, absolute), or a loader function.
    """
    contract = TorchContract.from_dict((base.report or {}).get("contract") or {})
    registered = contract.reference_set
    if reference_set is None and registered:
        return ContractFamily(contract, InputSpec.from_dict(base.input_spec),
                              registered if is_loader(registered) else ArtifactStore(data_dir).resolve(registered))  # fmt: skip
    return ContractFamily(contract, InputSpec.from_dict(base.input_spec), reference_set)


def _base_accuracy(
    data_dir: Path, base: ModelVersion, base_model: ContractModel, images: np.ndarray, labels: np.ndarray
) -> float:
    """What production scores: its deployed artifact when there is one, else its torch weights."""
    artifact = ArtifactStore(data_dir).resolve(base.artifact_path) if base.artifact_path else None
    if artifact is not None and artifact.is_file():
        return onnx_accuracy(artifact, images, labels)
    return torch_accuracy(base_model, images, labels)


def retrain(
    db: Database,
    data_dir: Path,
    model_name: str,
    labeled: LabeledData,
    config: RetrainConfig | None = None,
    *,
    since: datetime | None = None,
    calibration_images: np.ndarray | None = None,
    progress: StepProgress | None = None,
    reference_set: Path | None = None,
) -> RetrainOutcome:
    """Turn labeled production samples into a registered, compressed candidate (or a recorded rejection).

    ``reference_set`` overrides the model's registered reference set.
    """
    config = config or RetrainConfig()
    if len(labeled) == 0:
        window = f" since {since.isoformat()}" if since else ""
        raise Invalid("labeled", f"no labeled samples for model {model_name!r}{window}; label some first")
    if calibration_images is not None and len(calibration_images) == 0:
        raise Invalid("calibration_images", "is empty; pass None to calibrate on the labeled and reference images")
    if config.budget is not None:
        require_target(config.budget.provider, "the budget's latency")
    labeled_train, labeled_holdout = split_labeled(labeled, config.mix.holdout_fraction, config.seed)
    with db.session() as session:
        model_row = registry.get_model(session, model_name)
        base, weights_path = production_base(session, data_dir, model_name)
        family = family_for(base, data_dir, reference_set)
        splits = family.reference()  # before the run row: a missing reference set is bad input, not a failed run
        base_id = base.id
        run = TrainingRun(
            model_id=model_row.id,
            base_version_id=base.id,
            status="running",
            seed=config.seed,
            labeled_snapshot_sha256=labeled.snapshot_sha256(),
            data_snapshot={
                "reference": family.reference_snapshot(),
                "labeled": len(labeled),
                "labeled_train": len(labeled_train),
                "labeled_holdout": len(labeled_holdout),
                "since": since.isoformat() if since else None,
            },
            hyperparameters=config.hyperparameters(),
            compress_steps=["budget"] if config.budget else list(config.compress.steps),  # the recipe is chosen later
        )
        session.add(run)
        session.flush()
        run_id = run.id
    started = time.monotonic()
    try:
        base_model = family.load_weights(weights_path)
        images, labels, mix_summary = mix(splits.train.images, splits.train.labels, labeled_train, config.mix)
        train_config = replace(config.finetune, seed=config.seed)
        model = family.load_weights(weights_path)
        epochs = (lambda done, total, loss: progress("fine-tune", done, total)) if progress else None
        family.train(model, images, labels, train_config, progress=epochs)
        eval_images = np.concatenate([splits.val.images, labeled_holdout.images])
        eval_labels = np.concatenate([splits.val.labels, labeled_holdout.labels])
        # PTQ ranges must cover both distributions the gate judges: recent production inputs
        # (the labeled ones when none are given) and reference images.
        recent = labeled_train.images if calibration_images is None else calibration_images
        calibration = np.concatenate([recent, splits.val.images])
        packaged, searched = _package_candidate(
            model, data_dir, family, config, train=(images, labels), evaluation=(eval_images, eval_labels),
            calibration=calibration, train_config=train_config, progress=progress,
        )  # fmt: skip
        if packaged is None:  # nothing within budget: a recorded refusal that names the closest candidate
            assert searched is not None
            refusal = searched.refusal()
            report = {"budget_search": searched.as_dict(), "budget_refusal": refusal, "training_run_id": run_id}
            finish_run(db, run_id, started, status="rejected", metrics=report, error=refusal)
            return RetrainOutcome(run_id, "rejected", None, None, None, report)
        with db.session() as session:
            base = session.get(ModelVersion, base_id)  # type: ignore[assignment]  # production_base found it above
            result = gate(
                _base_accuracy(data_dir, base, base_model, splits.test.images, splits.test.labels),
                onnx_accuracy(packaged.onnx.path, splits.test.images, splits.test.labels),
                _base_accuracy(data_dir, base, base_model, labeled_holdout.images, labeled_holdout.labels),
                onnx_accuracy(packaged.onnx.path, labeled_holdout.images, labeled_holdout.labels),
                config.gate,
            )
            report = {
                **packaged.report,
                **({"budget_search": searched.as_dict()} if searched else {}),
                "accuracy_old": round(result.old_candidate, 4),
                "accuracy_new": round(result.new_candidate, 4),
                "gate": result.as_dict(),
                "mix": mix_summary,
                "training_run_id": run_id,
                "base_version": base.version,
            }
            if result.passed:
                version_row = register(session, data_dir, model_name, packaged, report)
            else:  # the files stay on record (the run names them), but no version is registered
                version_row = None
                for stored in (packaged.onnx, packaged.weights):
                    ArtifactStore(data_dir).record(session, stored)
            version_name = version_row.version if version_row else None
            version_id = version_row.id if version_row else None
    except BaseException as exc:
        finish_run(db, run_id, started, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    status = "succeeded" if result.passed else "rejected"
    finish_run(
        db, run_id, started, status=status, metrics=report, candidate_version_id=version_id,
        artifact_sha256=packaged.onnx.sha256, weights_sha256=packaged.weights.sha256,
        error=None if result.passed else "; ".join([*result.reasons, *fallback_note(report)]),
    )  # fmt: skip
    return RetrainOutcome(run_id, status, version_name, version_id, result, report)


def _package_candidate(
    model: ContractModel,
    data_dir: Path,
    family: ContractFamily,
    config: RetrainConfig,
    *,
    train: tuple[np.ndarray, np.ndarray],
    evaluation: tuple[np.ndarray, np.ndarray],
    calibration: np.ndarray,
    train_config: TrainConfig,
    progress: StepProgress | None,
) -> tuple[PackagedModel | None, SearchResult | None]:
    """The fine-tuned model compressed by ``config.compress`` or, with a budget, by the best recipe that fits it
    (None and the search when none does)."""
    common: dict[str, Any] = {"family": family, "train": train, "evaluation": evaluation, "calibration": calibration,
                              "train_config": train_config, "latency_repeats": config.latency_repeats, "progress": progress}  # fmt: skip
    if config.budget is None:
        return package(model, data_dir, compress_config=config.compress, **common), None

    def compress_recipe(recipe: Recipe, recipe_config: CompressConfig, workdir: Path) -> CompressionResult:
        return compress(model, *train, *evaluation, calibration, workdir, train_config, recipe_config, family=family,
                        progress=progress)  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="shiftwatch-budget-") as tmp:
        found, results = search(compress_recipe, config.compress, config.budget, evaluation, Path(tmp),
                                grid=config.budget_grid, progress=progress)
        if found.chosen is None:
            return None, found
        chosen = results[found.chosen]
        return package(model, data_dir, compress_config=config.compress, compressed=chosen, **common), found


def bootstrap(
    db: Database,
    data_dir: Path,
    model_name: str,
    class_names: list[str],
    family: ContractFamily,
    config: RetrainConfig | None = None,
    *,
    reference: TrainConfig | None = None,
    description: str = "",
    progress: StepProgress | None = None,
) -> RetrainOutcome:
    """Train ``family``'s factory from scratch on its reference set, compress and register it: ``production``
    when the model has no production version yet (there is nothing to roll out against), else ``candidate``."""
    config = config or RetrainConfig()
    reference = reference or TrainConfig(seed=config.seed)
    splits = family.reference()  # before any row: a missing reference set is bad input
    with db.session() as session:
        registry.register_model(session, model_name, class_names, description=description)
    epochs = (lambda done, total, loss: progress("train", done, total)) if progress else None
    model = family.new_model(reference.seed)
    family.train(model, splits.train.images, splits.train.labels, reference, progress=epochs)
    packaged = package(
        model, data_dir, family=family, train=(splits.train.images, splits.train.labels),
        evaluation=(splits.val.images, splits.val.labels), calibration=splits.train.images,
        train_config=reference, compress_config=config.compress, latency_repeats=config.latency_repeats,
        progress=progress,
    )  # fmt: skip
    accuracy = onnx_accuracy(packaged.onnx.path, splits.test.images, splits.test.labels)
    report = {**packaged.report, "accuracy_old": round(accuracy, 4), "accuracy_new": None, "trained": asdict(reference)}
    with db.session() as session:
        has_production = bool(registry.versions_in_state(session, model_name, "production"))
        row = register(session, data_dir, model_name, packaged, report, state="candidate" if has_production else "production")
        return RetrainOutcome(None, row.state, row.version, row.id, None, report)
