"""Register a user's model under the contract: a PyTorch factory + weights, or an ONNX file.

Everything is checked before anything is recorded (factory, weights, embedding layer, output
shape, finite outputs, export parity); a failure is an ``Invalid`` naming what is wrong
(HTTP 422, CLI exit 2) and leaves no registry row. The version's ``input_spec`` is the
declared preprocessing and its report carries the contract (``report["contract"]``), so
retraining can rebuild the model and every candidate inherits both.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from shiftwatch.artifacts import verify_onnx_artifact
from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.errors import Invalid
from shiftwatch.retrain.artifact_store import ArtifactStore
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.export import export_artifact
from shiftwatch.retrain.model_contract import OnnxContract, TorchContract
from shiftwatch.retrain.onnx_contract import adapt_onnx, validate_onnx
from shiftwatch.retrain.reference_set import is_loader, read_reference

PROBE_IMAGES = 16  # parity of the fp32 export is checked on this many seeded probe inputs


def _first_state(session: Session, model_name: str) -> str:
    """Production when the model has none yet (nothing to roll out against), else candidate."""
    return "candidate" if registry.versions_in_state(session, model_name, "production") else "production"


def register_torch_model(
    session: Session,
    data_dir: Path,
    model_name: str,
    class_names: list[str],
    version: str,
    contract: TorchContract,
    weights: Path,
    input_spec: dict[str, Any],
    *,
    state: str | None = None,
) -> ModelVersion:
    """Build ``contract.factory`` with ``weights``, validate, export to ONNX (parity-checked), register."""
    from shiftwatch.retrain.torch_contract import build, save_module_weights, validate

    spec = InputSpec.from_dict(input_spec)
    if not Path(weights).is_file():
        raise Invalid("weights", f"{weights} does not exist")
    if contract.reference_set:
        read_reference(contract.reference_set)  # a broken set is refused now, not at the first retrain
    model = build(contract, Path(weights))
    probe = validate(model, spec, len(class_names))
    store = ArtifactStore(data_dir)
    pixels = np.random.default_rng(0).random((PROBE_IMAGES, *spec.shape), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="shiftwatch-register-") as tmp:
        try:
            exported = export_artifact(model, Path(tmp), spec.normalise(pixels), name="fp32")
        except Exception as exc:  # noqa: BLE001 - torch.onnx raises many types; any of them means "cannot be exported"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise Invalid("factory", f"the model cannot be exported to ONNX, which serving needs: {first[:300]} "
                          "(replace the operator it names, e.g. AdaptiveAvgPool2d to a size that does not divide "
                          "the input with a global pool)") from None
        verify_onnx_artifact(exported.path, None)
        save_module_weights(model, Path(tmp) / "weights.pt")
        onnx_artifact = store.put(exported.path, "onnx")
        weights_artifact = store.put(Path(tmp) / "weights.pt", "weights")
    kept = [onnx_artifact, weights_artifact]
    if contract.reference_set and not is_loader(contract.reference_set):  # copied in, content-addressed: the contract names the copy, not the user's file
        reference = store.put(Path(contract.reference_set), "reference")
        contract = replace(contract, reference_set=store.relative(reference))
        kept.append(reference)
    registry.register_model(session, model_name, class_names)
    for stored in kept:
        store.record(session, stored)
    report = {
        "contract": contract.as_dict(),
        "weights_path": store.relative(weights_artifact),
        "weights_sha256": weights_artifact.sha256,
        "size_bytes": onnx_artifact.size_bytes,
        "parity": exported.parity.as_dict(),
        "compression_steps": [],
        "runtime": "onnxruntime",
    }
    return registry.register_version(
        session, model_name, version, embedding_dim=probe.embedding_dim, artifact_path=store.relative(onnx_artifact),
        artifact_sha256=onnx_artifact.sha256, input_spec=spec.as_dict(),
        state=state or _first_state(session, model_name), report=report,
    )  # fmt: skip


def register_onnx_model(
    session: Session,
    data_dir: Path,
    model_name: str,
    class_names: list[str],
    version: str,
    onnx_path: Path,
    input_spec: dict[str, Any],
    *,
    logits_output: str | None = None,
    embedding_output: str | None = None,
    outputs: str = "logits",
    state: str | None = None,
) -> ModelVersion:
    """Adapt ``onnx_path`` to the two outputs, validate it on a probe, register it (no torch involved).

    ``outputs="probabilities"``: the named output is already a softmax (refused as logits).
    An ONNX-only model can be served, quantized, shadowed and canaried; it cannot be retrained
    (there are no weights to fine-tune), which its report says.
    """
    spec = InputSpec.from_dict(input_spec)
    store = ArtifactStore(data_dir)
    with tempfile.TemporaryDirectory(prefix="shiftwatch-register-") as tmp:
        adapted = adapt_onnx(Path(onnx_path), Path(tmp) / "model.onnx",
                             logits_output=logits_output, embedding_output=embedding_output, outputs=outputs,
                             input_shape=spec.shape)  # fmt: skip
        embedding_dim = validate_onnx(adapted, spec, len(class_names), outputs=outputs, logits_name=logits_output or "the graph's first output")
        verify_onnx_artifact(adapted, None)
        stored = store.put(adapted, "onnx")
    registry.register_model(session, model_name, class_names)
    store.record(session, stored)
    report = {
        # outputs "probabilities": the artifact's logits are log(probabilities), so softmax gives them back unchanged
        "contract": OnnxContract(logits_output, embedding_output, outputs).as_dict(),  # type: ignore[arg-type]  # checked by adapt_onnx
        "size_bytes": stored.size_bytes,
        "compression_steps": [],
        "runtime": "onnxruntime",
        "retrainable": False,
    }
    return registry.register_version(
        session, model_name, version, embedding_dim=embedding_dim, artifact_path=store.relative(stored),
        artifact_sha256=stored.sha256, input_spec=spec.as_dict(),
        state=state or _first_state(session, model_name), report=report,
    )  # fmt: skip
