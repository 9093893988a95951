"""An int8 candidate of a registered version's own graph: ``shiftwatch retrain quantize``.

This is what an ONNX-only model gets instead of retraining (there are no weights to
fine-tune): static int8 PTQ of the version's fp32 graph, calibrated on the inputs the
version served (the input store), judged by the bar the torch path uses (top-1 agreement
with fp32 on at least 0.97 of the stored inputs, at most 1 point lost on labeled samples)
and timed against fp32 on this CPU. int8 that misses the bar, or runs slower than fp32,
is declined: nothing is registered and fp32 keeps serving; the run row says why.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from sqlalchemy.orm import Session

from shiftwatch.artifacts import verify_onnx_artifact
from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.db import Database
from shiftwatch.errors import Invalid
from shiftwatch.retrain.artifact_store import ArtifactStore
from shiftwatch.retrain.labeled import labeled_data, recent_inputs
from shiftwatch.retrain.measure import compare_latency, cpu_name
from shiftwatch.retrain.quantize import (
    QUANTIZED_MIN_AGREEMENT,
    QuantizeConfig,
    fused_operators,
    quantize_int8,
    require_target,
)
from shiftwatch.retrain.runs import finish_run
from shiftwatch.retrain.runtime import OnnxClassifier
from shiftwatch.retrain.tables import TrainingRun
from shiftwatch.retrain.training import LabeledData

# Fewer stored inputs than this calibrate ranges on too little and judge agreement too coarsely (1/32 a flip).
MIN_STORED_INPUTS = 32
# int8 counts as slower when its median CPU time exceeds fp32's by more than this share at
# batch 1 or batch 32: repeated runs of the same graph here differ by ~2-3 %.
SLOWER_TOLERANCE = 0.05
# The report fields a candidate inherits from its base: how to rebuild, retrain and read it.
INHERITED = ("contract", "retrainable", "weights_path", "weights_sha256")


@dataclass(frozen=True, slots=True)
class Int8Bar:
    """What int8 must meet to ship: the torch path's agreement and accuracy bar, and not slower here."""

    min_agreement: float = QUANTIZED_MIN_AGREEMENT
    max_drop: float = 0.01  # top-1 on labeled samples, a fraction (0.01 = one point)
    allow_slower: bool = False


@dataclass(frozen=True, slots=True)
class Int8Outcome:
    run_id: int
    status: str  # succeeded (candidate registered) or rejected (fp32 keeps serving)
    version: str | None
    base_version: str
    reasons: tuple[str, ...]
    report: dict[str, Any]


def _base(session: Session, model_name: str, version: str | None) -> ModelVersion:
    if version is not None:
        return registry.get_version(session, model_name, version)
    production = registry.versions_in_state(session, model_name, "production")
    if not production:
        raise Invalid("model", f"{model_name!r} has no production version; name one with --version")
    return production[-1]


def judge_int8(fp32: np.ndarray, int8: np.ndarray, labeled: LabeledData, latency: dict[str, dict[str, float]], bar: Int8Bar,
           ) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """The evidence and the reasons int8 is declined (none: it ships)."""
    stored = len(fp32) - len(labeled)
    agreement = float((fp32.argmax(1) == int8.argmax(1)).mean())
    reasons = []
    if agreement < bar.min_agreement:
        reasons.append(f"int8 gives fp32's top-1 on {agreement:.3f} of {len(fp32)} inputs (needs {bar.min_agreement:g})")
    evidence: dict[str, Any] = {"top1_agreement": round(agreement, 4), "stored_inputs": stored, "labeled": len(labeled)}
    if len(labeled):
        fp32_acc = float((fp32[stored:].argmax(1) == labeled.labels).mean())
        int8_acc = float((int8[stored:].argmax(1) == labeled.labels).mean())
        evidence.update(accuracy_fp32=round(fp32_acc, 4), accuracy_int8=round(int8_acc, 4))
        if fp32_acc - int8_acc > bar.max_drop:
            reasons.append(f"int8 loses {100 * (fp32_acc - int8_acc):.1f} points on {len(labeled)} labeled samples "
                           f"(at most {100 * bar.max_drop:g})")  # fmt: skip
    slower = [f"{ratio['ratio']:.2f}x fp32's CPU time at {batch.replace('batch', 'batch ')}"
              for batch, ratio in latency.items() if ratio["ratio"] > 1 + SLOWER_TOLERANCE]  # fmt: skip
    if slower and not bar.allow_slower:
        reasons.append(f"int8 is slower than fp32 on this CPU ({cpu_name()}): "
                       f"{', '.join(slower)} (--allow-slower registers it anyway)")  # fmt: skip
    evidence["int8_slower"] = bool(slower)
    return evidence, reasons


def quantize_version(
    db: Database,
    data_dir: Path,
    model_name: str,
    *,
    version: str | None = None,
    bar: Int8Bar | None = None,
    config: QuantizeConfig | None = None,
    latency_repeats: int = 30,
) -> Int8Outcome:
    """int8 PTQ of ``version`` (default: production) calibrated on its stored inputs; a candidate, or a recorded refusal."""
    bar, config = bar or Int8Bar(), config or QuantizeConfig()
    require_target(config.target, f"int8 for {config.target}")
    store = ArtifactStore(data_dir)
    with db.session() as session:
        model_row = registry.get_model(session, model_name)
        base = _base(session, model_name, version)
        if "ptq" in ((base.report or {}).get("compression_steps") or []):
            raise Invalid("version", f"{base.version!r} is already int8; quantize its fp32 parent")
        source = store.resolve(base.artifact_path) if base.artifact_path else None
        if source is None or not source.is_file():
            raise Invalid("version", f"{base.version!r} has no ONNX artifact in the artifact store to quantize")
        fused = fused_operators(source)
        if fused:
            raise Invalid("version", f"{base.version!r} is a graph ONNX Runtime already optimized ({', '.join(fused)}), which "
                                     "its quantizer cannot read: register the unoptimized export, or for a PyTorch model "
                                     f"`shiftwatch retrain --model {model_name} --compress ptq`")  # fmt: skip
        inputs = recent_inputs(session, data_dir, base.id)
        if len(inputs) < MIN_STORED_INPUTS:
            raise Invalid("inputs", f"{base.version!r} has {len(inputs)} stored inputs; int8 calibration needs at least "
                                    f"{MIN_STORED_INPUTS}: send traffic through the gateway (it stores inputs) first")  # fmt: skip
        labeled = labeled_data(session, data_dir, model_name)
        base_id, base_name, base_report = base.id, base.version, dict(base.report or {})
        input_spec, embedding_dim = dict(base.input_spec or {}), base.embedding_dim
        run = TrainingRun(
            model_id=model_row.id, base_version_id=base_id, status="running", seed=config.seed,
            labeled_snapshot_sha256=labeled.snapshot_sha256(),
            data_snapshot={"calibration": "stored inputs of " + base_name, "stored_inputs": len(inputs), "labeled": len(labeled)},
            hyperparameters={"quantize": asdict(config), "bar": asdict(bar)}, compress_steps=["ptq"],
        )  # fmt: skip
        session.add(run)
        session.flush()
        run_id = run.id
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="shiftwatch-int8-") as tmp:
            try:
                int8_path = quantize_int8(source, Path(tmp) / "int8.onnx", inputs, config)
            except (ValueError, RuntimeError, onnx.checker.ValidationError) as exc:
                raise Invalid("onnx", f"ONNX Runtime's int8 quantizer cannot quantize this graph: {str(exc).splitlines()[0]}") from None
            verify_onnx_artifact(int8_path, None)
            evaluation = np.concatenate([inputs, labeled.images]) if len(labeled) else inputs
            fp32_logits = OnnxClassifier(source, "cpu").predict(evaluation).logits
            int8_logits = OnnxClassifier(int8_path, "cpu").predict(evaluation).logits
            latency = compare_latency(source, int8_path, inputs, repeats=latency_repeats, provider=config.target)
            evidence, reasons = judge_int8(fp32_logits, int8_logits, labeled, latency, bar)
            stored = store.put(int8_path, "onnx") if not reasons else None
        report = {
            **{key: base_report[key] for key in INHERITED if key in base_report},
            "base_version": base_name,
            "training_run_id": run_id,
            "compression_steps": ["ptq"],
            "quantization": {**evidence, "outcome": "int8" if not reasons else "fp32: " + "; ".join(reasons)},
            "target_provider": config.target,
            "latency_cpu_ms": {
                batch: {"fp32": v["baseline_ms"], "int8": v["candidate_ms"], "ratio": v["ratio"]} for batch, v in latency.items()
            },
            "cpu": cpu_name(),
            "size_bytes": stored.size_bytes if stored else None,
            "size_bytes_fp32_onnx": source.stat().st_size,
            "runtime": "onnxruntime",
        }
        name, version_id = None, None
        if stored is not None:
            with db.session() as session:
                store.record(session, stored)
                row = registry.register_version(
                    session, model_name, registry.next_version_name(session, model_name), embedding_dim=embedding_dim,
                    artifact_path=store.relative(stored), artifact_sha256=stored.sha256, input_spec=input_spec,
                    state="candidate", report=report,
                )  # fmt: skip
                name, version_id = row.version, row.id
    except BaseException as exc:
        finish_run(db, run_id, started, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    status = "succeeded" if name else "rejected"
    finish_run(db, run_id, started, status=status, metrics=report, error="; ".join(reasons)[:2000] or None,
               artifact_sha256=stored.sha256 if stored else None, candidate_version_id=version_id)  # fmt: skip
    return Int8Outcome(run_id, status, name, base_name, tuple(reasons), report)

