"""The demo's acts, one function each, in the order the loop runs. Each act narrates what it does and why."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
from rich.table import Table
from sqlalchemy import func, select

from shiftwatch.collector import registry
from shiftwatch.collector.models import Model, ModelVersion, Prediction
from shiftwatch.demo.stage import Stage

MODEL = "digits"
CLASS_NAMES = [str(digit) for digit in range(10)]


def open_store(stage: Stage) -> None:
    """Act 1: the embedded SQLite store, migrated the same way `shiftwatch serve` migrates it."""
    stage.say(f"Store: [cyan]{stage.settings.database_url}[/] (schema migrated by Alembic, WAL mode)")
    stage.say(f"Artifacts, inputs and reports under [cyan]{stage.settings.data_dir}[/]")
    with stage.db.session() as session:
        registry.register_model(session, MODEL, CLASS_NAMES, description="handwritten digits (scikit-learn)")
    stage.say(f"Registered model [bold]{MODEL}[/] with classes 0-9.")


def stream(stage: Stage, source: "TrafficSource", requests: int, phase: str, title: str) -> None:
    """Serve ``requests`` images of ``source`` and log each prediction, recording production accuracy per batch."""
    with stage.progress() as progress:
        task = progress.add_task(title, total=requests)
        done = 0
        while done < requests:
            size = min(stage.scale.batch, requests - done)
            served = source.serve(stage, size)
            stage.timeline.record(size, served.accuracy, phase, served.version)
            done += size
            progress.update(task, advance=size, description=f"{title}  accuracy {served.accuracy:.0%}")
    stage.say(f"{phase}: production accuracy {stage.timeline.accuracy(phase):.1%} over {requests} requests")


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
    table = Table(title="Predictions stored", show_lines=False)
    for column in ("model", "version", "state", "route", "predictions", "mean confidence", "mean latency ms"):
        table.add_column(column)
    for name, version, state, route, count, confidence, latency in rows:
        table.add_row(name, version, state, route, str(count), f"{confidence:.3f}",
                      "-" if latency is None else f"{latency:.2f}")
    stage.console.print(table)
    stage.facts["stored_predictions"] = int(sum(row[4] for row in rows))


class TrafficSource:
    """Digits with their true labels; serves them through whatever serving path this build has."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int) -> None:
        self.images = images
        self.labels = labels
        self.rng = np.random.default_rng(seed)
        self.corrupt = None  # a callable images -> images once the drift is injected

    def sample(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        index = self.rng.integers(0, len(self.labels), size)
        images = self.images[index]
        if self.corrupt is not None:
            images = self.corrupt(images)
        return images, self.labels[index]

    def serve(self, stage: Stage, size: int) -> "Served":
        raise NotImplementedError


class Served:
    """Outcome of one served batch: which version answered production, and how often it was right."""

    def __init__(self, version: str, accuracy: float) -> None:
        self.version = version
        self.accuracy = accuracy


class SdkSource(TrafficSource):
    """Predicts in this process and logs every prediction through the client SDK over HTTP (no gateway yet)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, predict, version: str, seed: int = 7) -> None:  # type: ignore[no-untyped-def]
        super().__init__(images, labels, seed)
        self.predict = predict
        self.version = version

    def serve(self, stage: Stage, size: int) -> Served:
        images, labels = self.sample(size)
        started = time.perf_counter()
        probabilities = self.predict(images)
        latency_ms = (time.perf_counter() - started) * 1000 / size
        predicted = probabilities.argmax(axis=1)
        for i in range(size):
            stage.client.log(
                MODEL, self.version, int(predicted[i]), float(probabilities[i, predicted[i]]),
                probabilities=probabilities[i], embedding=images[i].reshape(-1), latency_ms=latency_ms,
                request_id=f"req-{stage.timeline.step + i}", stream_id=f"camera-{i % 4}",
            )
        return Served(self.version, float(np.mean(predicted == labels)))


def stand_in_model(stage: Stage) -> SdkSource:
    """Until the retrain package lands: a logistic regression on the 8x8 digits, registered as v1."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    stage.not_built("reference CNN, compression and ONNX export (shiftwatch.retrain)",
                    "Using a scikit-learn logistic regression on raw 8x8 pixels as v1 so the store has traffic.")
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(images[:1000].reshape(1000, -1), digits.target[:1000])
    with stage.db.session() as session:
        registry.register_version(session, MODEL, "v1", embedding_dim=64, state="production",
                                  report={"kind": "stand-in logistic regression"})
    stage.say("Registered [bold]digits v1[/] (state production).")
    return SdkSource(images[1000:], digits.target[1000:],
                           lambda batch: model.predict_proba(batch.reshape(len(batch), -1)), "v1")


def count_routes(stage: Stage) -> Counter:
    with stage.db.session() as session:
        return Counter(dict(session.execute(select(Prediction.route, func.count()).group_by(Prediction.route)).all()))
