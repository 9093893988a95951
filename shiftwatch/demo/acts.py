"""Acts 1-4 of the demo: the store, the reference model, serving production traffic, and the drift.

One function per act; each narrates what it does and why. Acts 5-9 (the loop that answers
the drift) are in ``loop.py``. What is particular to a model (its name, how v1 is made, its
traffic, its drift, the pace) is the stage's ``Subject``: ``digits_subject`` here, the
realistic ResNet example in ``realistic.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from rich.table import Table
from sqlalchemy import func, select

from shiftwatch.collector import registry
from shiftwatch.collector.tables import Model, ModelVersion, Prediction
from shiftwatch.db import utcnow
from shiftwatch.demo.stage import Scale, Service, Stage, Subject, has_module
from shiftwatch.demo.traffic import Drift, GatewayServing, Traffic
from shiftwatch.detectors import configs, references

# A camera whose exposure went flat: the reference CNN drops from ~96% to ~60% on it (measured
# on the held-out split), and a few hundred labeled examples are enough to learn it back.
DIGITS_DRIFT = Drift(corruption="contrast", severity=4, story="a camera's exposure goes flat")


def digits_subject(fast: bool = False) -> Subject:
    """The default story: the built-in 32x32 digits CNN, trained from scratch in act 2."""
    return Subject(model="digits", described="the reference CNN on scikit-learn's digits",
                   reference_data="the reference digits", bootstrap=train_digits,
                   traffic=lambda: Traffic.held_out(seed=0), drift=DIGITS_DRIFT,
                   scale=Scale.fast() if fast else Scale.full())  # fmt: skip


def open_store(stage: Stage) -> None:
    """Act 1: the embedded SQLite store, migrated the same way `shiftwatch serve` migrates it."""
    stage.say(f"Store: [cyan]{stage.settings.database_url}[/] (schema migrated by Alembic, WAL mode)")
    stage.say(f"Artifacts, inputs and reports under [cyan]{stage.settings.data_dir}[/]")


def bootstrap_model(stage: Stage) -> bool:
    """Act 2: the subject's v1, registered as production (training needs torch, the `train` extra)."""
    if not has_module("torch"):
        stage.not_built("training (the `train` extra: pip install 'shiftwatch[train]')",
                        "There is no model to serve; a monitoring-only install watches models trained elsewhere.")
        return False
    stage.subject.bootstrap(stage)
    return True


def train_digits(stage: Stage) -> None:
    """The digits' act 2: train the reference CNN, compress it, export it to ONNX and register it as production v1."""
    # retrain's pipeline imports torch, which only the `train` extra installs: imported once it is known to be there.
    from shiftwatch.retrain.compress import CompressConfig
    from shiftwatch.retrain.pipeline import RetrainConfig, bootstrap
    from shiftwatch.retrain.reference_model import TrainConfig

    steps = stage.scale.compress_steps
    stage.say(f"Training {stage.subject.described}, then compressing it ({', '.join(steps) or 'none'}) "
              "and exporting to ONNX Runtime (parity-checked against PyTorch).")
    config = RetrainConfig(compress=CompressConfig(steps=steps))
    with stage.progress() as progress:
        outcome = bootstrap(stage.db, stage.settings.data_dir, stage.model, config, reference=TrainConfig(epochs=stage.scale.reference_epochs),
                            progress=stage.step_bars(progress))
    report = outcome.report
    registered(stage, outcome.version or "-", outcome.status, report)


def registered(stage: Stage, version: str, state: str, report: dict[str, Any]) -> None:
    """End of act 2, for every subject: say what was registered and keep it for the summary."""
    stage.say(f"Registered [bold]{stage.model} {version}[/] as {state}: held-out accuracy "
              f"{report.get('accuracy_old', float('nan')):.1%}, {describe_artifact(report)}")
    stage.facts["reference_version"] = version
    stage.facts["reference_artifact"] = describe_artifact(report)


def describe_artifact(report: dict[str, Any]) -> str:
    """One line about a packaged model from retrain's report: size, latency, compression."""
    parts = []
    if report.get("size_bytes"):
        parts.append(f"{report['size_bytes'] / 1024:.0f} KiB")
    latency = report.get("latency_ms")
    if isinstance(latency, dict):
        batch1 = latency.get("batch_1") or next(iter(latency.values()), None)
        if isinstance(batch1, dict) and batch1.get("p50") is not None:
            parts.append(f"{batch1['p50']:.2f} ms p50 at batch 1")
    if report.get("compression_steps") is not None:
        parts.append("steps: " + (", ".join(report["compression_steps"]) or "none"))
    return ", ".join(parts) or "artifact registered"


def deploy(stage: Stage, api_url: str) -> Service:
    """Act 3: put v1 behind the gateway: clients send images, the gateway answers and logs every prediction."""
    serving = GatewayServing(api_url, stage.model, headers=stage.tokens.gateway_headers)
    service = Service(api_url, stage.subject.traffic(), serving)
    stage.say(f"Clients send PNGs to [cyan]POST {api_url}/v1/models/{stage.model}/predict[/] with the "
              "demo-gateway token (scope ingest); the gateway batches "
              "concurrent requests into one ONNX Runtime call and logs every prediction, input included "
              "(services that run their own model log through the SDK: Client(url).log(...)).")
    return service


def stream(
    stage: Stage, service: Service, requests: int, phase: str, title: str,
    after_batch: Callable[[], bool] | None = None,
) -> None:
    """Send ``requests`` through the serving path, recording the accuracy users got per batch.

    ``after_batch()`` runs after each batch (the rollout controller ticks there); a true
    return value ends the stream early.
    """
    with stage.progress() as progress:
        task = progress.add_task(title, total=requests)
        done = 0
        while done < requests:
            size = min(stage.scale.batch, requests - done)
            ids, images, labels = service.traffic.next_batch(size)
            answers = service.serving.serve(service.traffic, ids, images)
            accuracy = float(np.mean(answers.predicted == labels))
            stage.timeline.record(size, accuracy, phase, answers.versions[0])
            stage.routes.update(answers.routes)
            done += size
            progress.update(task, advance=size, description=f"{title}  accuracy {accuracy:.0%}")
            if after_batch is not None and after_batch():
                break
    stage.say(f"{title}: users got the right digit {stage.timeline.accuracy(phase):.1%} of the time")


def wait_until_stored(stage: Stage, traffic: Traffic, timeout_s: float = 30.0) -> int:
    """Wait until every request sent so far has its prediction in the store (the gateway logs off the hot path)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with stage.db.session() as session:
            stored = int(session.scalar(
                select(func.count()).select_from(Prediction).where(Prediction.route == "production")) or 0)
        if stored >= traffic.sent - stage.routes["canary"] or time.monotonic() > deadline:
            return stored
        time.sleep(0.1)


def watch_reference(stage: Stage, traffic: Traffic) -> None:
    """End of act 3: pin the clean traffic as v1's reference and start a drift detector on it."""
    wait_until_stored(stage, traffic)
    with stage.db.session() as session:
        v1 = registry.versions_in_state(session, stage.model, "production")[-1]
        reference = references.pin_time_range(session, v1.id, stage.started_at - timedelta(hours=1), utcnow())
        config = configs.create(
            session, v1.id, "mmd", window_last_n=stage.scale.detector_window, schedule_seconds=1,
            confirm_runs=2, alpha=0.01,
        )
        stage.say(f"Pinned the last {reference.n} production predictions as v1's reference. Watching v1 with "
                  f"[bold]{config.detector}[/] on embeddings over the last {config.window_last_n} predictions "
                  f"(alpha {config.alpha}, {config.confirm_runs} confirming runs before an alert).")


def inject_drift(stage: Stage, traffic: Traffic) -> datetime:
    """Act 4: the world changes (the subject's drift). Nobody tells the model. Returns when the drift began."""
    drift = stage.subject.drift
    traffic.drift = drift
    started_at = utcnow()
    stage.timeline.mark(f"drift: {drift.corruption}")
    stage.say(f"{drift.story[:1].upper()}{drift.story[1:]}: injecting [bold red]{drift.corruption}[/] corruption "
              f"at severity {drift.severity} into all traffic.")
    return started_at


def show_stored(stage: Stage, traffic: Traffic) -> None:
    """What the collector holds now, read back from the store."""
    wait_until_stored(stage, traffic)
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
