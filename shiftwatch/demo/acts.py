"""Acts 1-4 of the demo: the store, the reference model, serving production traffic, and the drift.

One function per act; each narrates what it does and why. Acts 5-9 (the loop that answers
the drift) are in ``loop.py``. What is particular to a model (its name, how v1 is made, its
traffic, its drift, the pace) is the stage's ``Subject``: ``digits_subject`` here, the
realistic ResNet example in ``realistic.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from rich.table import Table

from shiftwatch.demo.oracle import served_since
from shiftwatch.demo.stage import Scale, Service, Stage, Subject, has_module
from shiftwatch.demo.traffic import Drift, GatewayServing, Traffic

# A camera whose exposure went flat: the reference CNN drops from ~96% to ~60% on it (measured
# on the held-out split), and a few hundred labeled examples are enough to learn it back.
DIGITS_DRIFT = Drift(corruption="contrast", severity=4, story="a camera's exposure goes flat")
# The second lap's shift: the cameras are swapped for ones that send negatives (light digits on dark).
DIGITS_SECOND_DRIFT = Drift(corruption="invert", severity=5, story="new cameras send negatives")


def digits_subject(fast: bool = False) -> Subject:
    """The default story: the built-in 32x32 digits CNN, trained from scratch in act 2."""
    return Subject(model="digits", described="the reference CNN on scikit-learn's digits",
                   reference_data="the reference digits", bootstrap=train_digits,
                   traffic=lambda: Traffic.held_out(seed=0), drift=DIGITS_DRIFT, second_drift=DIGITS_SECOND_DRIFT,
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
    steps = stage.scale.compress_steps
    stage.say(f"Training {stage.subject.described}, then compressing it ({', '.join(steps) or 'none'}) "
              "and exporting to ONNX Runtime (parity-checked against PyTorch).")
    ran = stage.shell.run("retrain", "bootstrap", "--model", stage.model, "--compress", ",".join(steps) or "none",
                          "--epochs", str(stage.scale.reference_epochs), show_output=False,
                          waiting=f"training {stage.model} v1")
    summary = ran.json()
    registered(stage, summary.get("version") or "-", "production", summary)


def registered(stage: Stage, version: str, state: str, report: dict[str, Any]) -> None:
    """End of act 2, for every subject: say what was registered and keep it for the summary."""
    accuracy = f"held-out accuracy {report['accuracy_old']:.1%}, " if report.get("accuracy_old") is not None else ""
    stage.say(f"Registered [bold]{stage.model} {version}[/] as {state}: {accuracy}{describe_artifact(report)}")
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
    """Wait until the gateway has logged every answer sent so far (it logs off the hot path); how many it logged.

    The gateway's own counter (``GET /v1/gateway/stats``) counts production, shadow and canary rows;
    it is settled once it covers every request and stops moving.
    """
    deadline = time.monotonic() + timeout_s
    last = -1
    while True:
        logged = int(stage.api.get("/v1/gateway/stats", model=stage.model)["log_written"])
        if (logged >= traffic.sent and logged == last) or time.monotonic() > deadline:
            return logged
        last = logged
        time.sleep(0.2)


def watch_reference(stage: Stage, traffic: Traffic, version: str, since: datetime) -> None:
    """Pin the clean traffic, labeled, as ``version``'s reference and start a drift detector on it (act 3, and the
    fallback of a later lap when promotion did not carry them over)."""
    wait_until_stored(stage, traffic)
    path = f"/v1/models/{stage.model}/versions/{version}/reference/upload"
    # What docs/own-model-monitoring.md ("Set the reference") asks for: the model's outputs on data it is
    # right about at the known rate, with their labels; here the clean traffic, labeled by the oracle.
    served = served_since(stage, traffic, version, since, vectors=True)
    reference = stage.api.put_arrays(path, {
        "probabilities": np.asarray([p["probabilities"] for p in served], dtype=np.float32),
        "embeddings": np.asarray([p["embedding"] for p in served], dtype=np.float32),
        "labels": np.asarray([traffic.truth[p["request_id"]] for p in served], dtype=np.int64)})
    config = stage.api.post("/v1/detector-configs", {
        "model": stage.model, "version": version, "detector": "mmd", "window_last_n": stage.scale.detector_window,
        "schedule_seconds": 1, "confirm_runs": 2, "alpha": 0.01})
    stage.say(f"Pinned the {reference['n']} clean production predictions as {version}'s reference, with their labels "
              f"(the oracle stands in for the team that labels what it calls normal; [bold]PUT {path}[/]): with "
              "labels, an alert can say what a drift costs in accuracy. Watching "
              f"{version} with [bold]{config['detector']}[/] on embeddings over the "
              f"last {config['window_last_n']} predictions (alpha {config['alpha']}, {config['confirm_runs']} confirming "
              "runs before an alert; [bold]POST /v1/detector-configs[/]); the server's detector job runs it every second.")


def inject_drift(stage: Stage, traffic: Traffic) -> datetime:
    """Act 4: the world changes (the lap's drift). Nobody tells the model. Returns when the drift began."""
    drift = stage.subject.drift_of(stage.lap)
    traffic.drift = drift
    started_at = datetime.now(UTC)
    stage.timeline.mark(stage.lap_label(f"drift: {drift.corruption}"))
    stage.say(f"{drift.story[:1].upper()}{drift.story[1:]}: injecting [bold red]{drift.corruption}[/] corruption "
              f"at severity {drift.severity} into all traffic.")
    return started_at


def show_stored(stage: Stage, traffic: Traffic) -> None:
    """What the server holds now: its versions and states, and how many predictions the gateway logged."""
    logged = wait_until_stored(stage, traffic)
    table = Table(title=f"{stage.model}: versions (GET /v1/models/{stage.model}/versions)")
    for column in ("version", "state", "embedding dim", "artifact"):
        table.add_column(column)
    for version in stage.api.versions(stage.model):
        table.add_row(version["version"], version["state"], str(version["embedding_dim"]),
                      (version["artifact_path"] or "-")[-40:])
    stage.console.print(table)
    answered = ", ".join(f"{n} {route}" for route, n in sorted(stage.routes.items()))
    stage.say(f"The gateway logged {logged} predictions (GET /v1/gateway/stats); its answers so far: {answered}.")
    stage.facts["stored_predictions"] = logged
