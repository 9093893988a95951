"""The demo's acts, one function each, in the order the loop runs. Each act narrates what it does and why."""

from __future__ import annotations

import numpy as np
from rich.table import Table
from sqlalchemy import func, select

from shiftwatch.artifacts import sha256_file
from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.models import Model, ModelVersion, Prediction
from shiftwatch.demo.stage import Stage
from shiftwatch.demo.traffic import Drift, InProcessServing, Traffic

MODEL = "digits"
# A camera whose exposure went flat: the reference CNN drops from ~96% to ~60% on it (measured
# on the held-out split), and a few hundred labeled examples are enough to learn it back.
DRIFT = Drift(corruption="contrast", severity=4)


def open_store(stage: Stage) -> None:
    """Act 1: the embedded SQLite store, migrated the same way `shiftwatch serve` migrates it."""
    from shiftwatch.retrain.digits import CLASS_NAMES

    stage.say(f"Store: [cyan]{stage.settings.database_url}[/] (schema migrated by Alembic, WAL mode)")
    stage.say(f"Artifacts, inputs and reports under [cyan]{stage.settings.data_dir}[/]")
    with stage.db.session() as session:
        registry.register_model(session, MODEL, CLASS_NAMES, description="handwritten digits, 32x32 grayscale")
    stage.say(f"Registered model [bold]{MODEL}[/] with classes 0-9.")


def train_reference(stage: Stage) -> None:
    """Act 2: train the reference CNN on the digits, export it to ONNX (parity-checked) and register it as v1."""
    from shiftwatch.retrain import digits, export, reference_model

    with stage.progress() as progress:
        task = progress.add_task("training the reference CNN", total=reference_model.TrainConfig().epochs)
        model = reference_model.train_reference(
            seed=0, progress=lambda done, total, loss: progress.update(task, completed=done,
                                                                       description=f"training the reference CNN  loss {loss:.3f}"))
    splits = digits.split_digits(0)
    accuracy = reference_model.accuracy(model, splits.test.images, splits.test.labels)
    directory = stage.settings.data_dir / "artifacts" / MODEL / "v1"
    directory.mkdir(parents=True, exist_ok=True)
    exported = export.export_artifact(model, directory, splits.val.images)
    stage.say(f"Held-out accuracy {accuracy:.1%}. Exported to ONNX: {exported.path.name}, parity "
              f"max |diff| {exported.parity.max_abs_logit_diff:.1e}, top-1 agreement {exported.parity.top1_agreement:.3f}")
    stage.not_built("compression (PTQ int8 / pruning / distillation, shiftwatch.retrain)",
                    "v1 is deployed as the fp32 ONNX export.")
    register_version(stage, "v1", exported.path, "production",
                     {"kind": "reference", "test_accuracy": accuracy})
    stage.facts["reference_accuracy_held_out"] = f"{accuracy:.1%}"


def register_version(stage: Stage, version: str, artifact, state: str, report: dict) -> None:  # type: ignore[no-untyped-def]
    from shiftwatch.retrain.digits import INPUT_SPEC

    relative = artifact.relative_to(stage.settings.data_dir)
    with stage.db.session() as session:
        registry.register_version(
            session, MODEL, version, embedding_dim=64, artifact_path=str(relative),
            artifact_sha256=sha256_file(artifact), input_spec=INPUT_SPEC, state=state, report=report,
        )
    stage.say(f"Registered [bold]{MODEL} {version}[/] (state {state}, artifact {relative}).")


def deploy(stage: Stage) -> None:
    """Act 3: put v1 behind a serving path that logs every prediction."""
    with stage.db.session() as session:
        artifact = registry.get_version(session, MODEL, "v1").artifact_path
    stage.not_built("the serving gateway (shiftwatch.rollout)",
                    "v1 answers in this process with ONNX Runtime; every prediction goes through the client SDK.")
    stage.serving = InProcessServing(stage.client, InputStore(stage.settings.data_dir), MODEL, "v1",
                                     str(stage.settings.data_dir / artifact))
    stage.traffic = Traffic.held_out(seed=0)


def stream(stage: Stage, requests: int, phase: str, title: str) -> None:
    """Send ``requests`` through the serving path, recording the accuracy users got per batch."""
    with stage.progress() as progress:
        task = progress.add_task(title, total=requests)
        done = 0
        while done < requests:
            size = min(stage.scale.batch, requests - done)
            ids, images, labels = stage.traffic.next_batch(size)
            answers = stage.serving.serve(stage.traffic, ids, images)
            accuracy = float(np.mean(answers.predicted == labels))
            stage.timeline.record(size, accuracy, phase, answers.versions[0])
            done += size
            progress.update(task, advance=size, description=f"{title}  accuracy {accuracy:.0%}")
    stage.say(f"{title}: users got the right digit {stage.timeline.accuracy(phase):.1%} of the time")


def inject_drift(stage: Stage) -> None:
    """Act 4: a camera's exposure goes flat. Nobody tells the model."""
    stage.traffic.drift = DRIFT
    stage.timeline.mark(f"drift: {DRIFT.corruption} (severity {DRIFT.severity})")
    stage.say(f"Injecting [bold red]{DRIFT.corruption}[/] corruption at severity {DRIFT.severity} into all traffic.")


def show_stored(stage: Stage) -> None:
    """What the collector holds now, read back from the store (after the SDK has flushed)."""
    stage.client.flush()
    with stage.db.session() as session:
        rows = session.execute(
            select(Model.name, ModelVersion.version, ModelVersion.state, Prediction.route, func.count(),
                   func.avg(Prediction.confidence), func.avg(Prediction.latency_ms))
            .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
            .join(Model, Model.id == ModelVersion.model_id)
            .group_by(Model.name, ModelVersion.version, ModelVersion.state, Prediction.route)
            .order_by(ModelVersion.version, Prediction.route)
        ).all()
    table = Table(title="Predictions stored")
    for column in ("model", "version", "state", "route", "predictions", "mean confidence", "mean latency ms"):
        table.add_column(column)
    for name, version, state, route, count, confidence, latency in rows:
        table.add_row(name, version, state, route, str(count), f"{confidence:.3f}",
                      "-" if latency is None else f"{latency:.2f}")
    stage.console.print(table)
    stage.facts["stored_predictions"] = int(sum(row[4] for row in rows))


def detect(stage: Stage) -> bool:
    """Act 5: the scheduled detectors compare recent traffic with v1's reference and open an alert."""
    stage.not_built("scheduled drift runs, alerts and webhooks (shiftwatch.detectors runs/alerts)",
                    "Nobody is told that accuracy fell; the rest of the loop cannot start.")
    return False


def label(stage: Stage) -> bool:
    """Act 6: the samples the detector flagged are queued and labeled."""
    stage.not_built("the labeling queue and oracle (shiftwatch.labeling)", "No labels are collected.")
    return False


def retrain(stage: Stage) -> bool:
    """Act 7: retrain on the labeled samples, compress, export, register a candidate."""
    stage.not_built("candidate retraining (`shiftwatch retrain`)", "No candidate version is built.")
    return False


def roll_out(stage: Stage) -> bool:
    """Act 8: shadow, then canary, then a person approves, then promotion."""
    stage.not_built("shadow / canary rollout and approval (shiftwatch.rollout)", "v1 stays in production.")
    return False
