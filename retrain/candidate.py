"""Package a trained torch model as a registered candidate: compress, store, measure, register.

This is the only path to a new model version (``bootstrap`` and ``retrain`` both end here):
the artifact is an ONNX Runtime model that passed the parity check, stored by sha256, and
its report carries the accuracy, size, latency and compression evidence.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from shiftwatch.artifacts import verify_onnx_artifact
from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.retrain.artifact_store import ArtifactStore, StoredArtifact
from shiftwatch.retrain.compress import CompressConfig, CompressionResult, StepProgress, compress
from shiftwatch.retrain.contract_family import ContractFamily
from shiftwatch.retrain.measure import latency_report
from shiftwatch.retrain.torch_contract import ContractModel
from shiftwatch.retrain.trainer import TrainConfig


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """Artifacts written and measured, not yet registered."""

    onnx: StoredArtifact
    weights: StoredArtifact
    compression: CompressionResult
    report: dict[str, Any]
    embedding_dim: int
    input_spec: dict[str, Any]  # the declared preprocessing, carried to the new version unchanged


def package(
    model: ContractModel,
    data_dir: Path,
    *,
    train: tuple[np.ndarray, np.ndarray],
    evaluation: tuple[np.ndarray, np.ndarray],
    calibration: np.ndarray,
    train_config: TrainConfig,
    compress_config: CompressConfig,
    latency_repeats: int = 100,
    progress: StepProgress | None = None,
    family: ContractFamily,
    compressed: CompressionResult | None = None,
) -> PackagedModel:
    """Compress ``model`` (unless ``compressed`` already holds its result), store the ONNX artifact and
    ``model``'s own fp32 weights, measure both.

    The weights stored are the uncompressed model's: the next retraining fine-tunes from them,
    so compression does not compound over generations (a student of a student of ...).
    """
    store = ArtifactStore(data_dir)
    with tempfile.TemporaryDirectory(prefix="shiftwatch-retrain-") as tmp:
        work = Path(tmp)
        result = compressed or compress(
            model, *train, *evaluation, calibration, work, train_config, compress_config, progress=progress, family=family
        )
        verify_onnx_artifact(result.path, None)
        onnx_artifact = store.put(result.path, "onnx")
        fp32_size = result.fp32_path.stat().st_size
        family.save_weights(model, work / "weights.pt")
        weights = store.put(work / "weights.pt", "weights")
    if progress is not None:
        progress("measure", 0, 1)
    latency = latency_report(onnx_artifact.path, evaluation[0], repeats=latency_repeats)
    if progress is not None:
        progress("measure", 1, 1)
    report: dict[str, Any] = {
        "size_bytes": onnx_artifact.size_bytes,
        "size_bytes_fp32_onnx": fp32_size,
        "latency_ms": latency,
        "compression_steps": list(result.steps_applied),
        "compression": result.details,
        "parity": result.parity.as_dict(),
        "quantized_parity": result.quantized_parity.as_dict() if result.quantized_parity else None,
        "weights_path": store.relative(weights),
        "weights_sha256": weights.sha256,
        "runtime": "onnxruntime",
        **family.report_fields(),
    }
    return PackagedModel(onnx_artifact, weights, result, report, family.embedding_dim(result.model), family.input_spec())


def register(
    session: Session,
    data_dir: Path,
    model_name: str,
    packaged: PackagedModel,
    report: dict[str, Any],
    *,
    state: str = "candidate",
    version: str | None = None,
) -> ModelVersion:
    """Record the artifact rows and register the version (``candidate`` unless told otherwise)."""
    store = ArtifactStore(data_dir)
    store.record(session, packaged.onnx)
    store.record(session, packaged.weights)
    return registry.register_version(
        session,
        model_name,
        version or registry.next_version_name(session, model_name),
        embedding_dim=packaged.embedding_dim,
        artifact_path=store.relative(packaged.onnx),
        artifact_sha256=packaged.onnx.sha256,
        input_spec=dict(packaged.input_spec),
        state=state,
        report=report,
    )
