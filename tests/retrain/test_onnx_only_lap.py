"""An ONNX-only lap through the CLI and HTTP only: register -> serve -> alert -> import labels -> int8 -> shadow
-> canary -> approve, without ``--force``, on a graph that ends in a softmax (``tests/support/softmax_graph.py``:
input ``pixels``, opset 11, built in the test). No torch, no database session, no internal function."""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.support import softmax_graph as colours
from tests.support.command_line import cli
from tests.support.rollout import post_and_drain

MODEL = "colours"
# The plan is the user's to set: two canary steps, and an accuracy margin of 10 points, so the SPRT can
# accept "not worse" on the few dozen audit labels a test affords (3 points needs hundreds per arm). The
# latency budget is not under test: on 2 cores shared with other jobs the shadow's p99 passed 50 ms.
PLAN = {"min_shadow_pairs": 40, "min_step_predictions": 30, "accuracy_margin": 0.1, "latency_budget_ms": 1000}
# The CLI reads settings from the environment, as a user's shell has them: a budget that holds this lap's labels,
# and an audit slice of 40 per route and run, so one labeling round after the first canary step gives each arm
# the SPRT's 30 (the default 10 gets there in three rounds).
BUDGET = {"SHIFTWATCH_LABELING_DAILY_BUDGET": "2000", "SHIFTWATCH_LABELING_BATCH_SIZE": "400",
          "SHIFTWATCH_LABELING_AUDIT_PER_ROUTE": "40"}  # fmt: skip


@pytest.fixture
def settings(settings):
    """The gateway re-reads its routes every 0.2 s (default 1 s): the lap waits less for a rollout to reach it."""
    return settings.model_copy(update={"gateway_refresh_seconds": 0.2, "labeling_daily_budget": 2000, "labeling_audit_per_route": 40})


class Traffic:
    """Clients of the gateway, and what a labeler would answer for each request (the truth, kept by request id)."""

    def __init__(self, api) -> None:
        self.api = api
        self.truth: dict[str, int] = {}

    def send(self, prefix: str, seed: int, n: int, cast: float = 0.0) -> float:
        """n requests, each from its own client; the share answered right."""
        images, labels = colours.render(seed, n, cast)
        headers = [{"x-request-id": f"{prefix}-{i}", "x-client-key": f"{prefix}-{i}"} for i in range(n)]
        answers = post_and_drain(self.api, MODEL, [colours.png(pixels) for pixels in images], headers)
        self.truth.update({h["x-request-id"]: int(y) for h, y in zip(headers, labels)})
        return float(np.mean([a["class"] == y for a, y in zip(answers, labels)]))

    def answer(self, path: Path) -> Path:
        """The labeler's file: every request sent so far, keyed by request id, labelled with its class name."""
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["request_id", "label"])
            writer.writerows((rid, colours.CLASS_NAMES[y]) for rid, y in self.truth.items())
        return path


def shiftwatch(settings, *args: str) -> str:
    result = cli(settings, *args, **BUDGET)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def label_round(settings, traffic: Traffic, folder: Path, name: str, since: datetime) -> None:
    """The labeling policy queues a batch from the traffic since ``since`` (its audit slice included); the labels
    come back as a file. (A lap in a test takes seconds; a real one's --hours would be a day.)"""
    hours = (datetime.now(UTC) - since).total_seconds() / 3600
    shiftwatch(settings, "labeling", "select", "--model", MODEL, "--hours", f"{hours:.6f}")
    shiftwatch(settings, "labeling", "import", str(traffic.answer(folder / f"{name}.csv")), "--model", MODEL)


def tick(settings) -> tuple[str, list[str]]:
    """The controller once (the server's scheduler does this every 30 s), then time for the gateway to re-read routes."""
    (outcome,) = json.loads(shiftwatch(settings, "rollout", "tick", "--json"))
    time.sleep(1.0)
    return outcome["decision"], outcome["reasons"]


def test_an_onnx_only_model_ending_in_a_softmax_goes_around_the_loop_without_force(settings, api, tmp_path):
    graph = colours.build(tmp_path / "colours.onnx")
    # 1. register: the graph's output is a softmax, so it is declared as probabilities
    registered = json.loads(shiftwatch(settings, "retrain", "register", "--model", MODEL, "--classes", ",".join(colours.CLASS_NAMES),
                                       "--onnx", str(graph), "--input-spec", json.dumps(colours.INPUT_SPEC),
                                       "--embedding-output", "hidden", "--outputs", "probabilities"))  # fmt: skip
    assert registered["state"] == "production"
    # 2. serve: clean traffic through the gateway is pinned as the reference; an MMD detector watches the embeddings
    traffic = Traffic(api)
    start = datetime.now(UTC) - timedelta(seconds=1)
    assert traffic.send("clean", 1, 150) > 0.95
    pinned = api.put(f"/v1/models/{MODEL}/versions/v1/reference",
                     json={"start": start.isoformat(), "end": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()})  # fmt: skip
    assert pinned.status_code == 200 and pinned.json()["n"] == 150, pinned.text
    config = api.post("/v1/detector-configs", json={"model": MODEL, "version": "v1", "detector": "mmd", "window_last_n": 150,
                                                    "schedule_seconds": 60, "confirm_runs": 1})  # fmt: skip
    assert config.status_code == 201, config.text
    # 3. alert: a red cast on every camera; the check finds it and an alert opens
    drift_start = datetime.now(UTC)
    assert traffic.send("cast", 2, 150, cast=0.45) < 0.8
    check = api.post(f"/v1/models/{MODEL}/versions/v1/check", json={})
    assert check.status_code == 200 and check.json()["runs"][0]["decision"], check.text
    alerts = api.get("/v1/alerts", params={"model": MODEL, "state": "open"}).json()
    assert len(alerts) == 1
    # 4. labels: the policy's batch and the labeler's file (no Label Studio)
    label_round(settings, traffic, tmp_path, "lap-labels", since=drift_start)
    # 5. int8 of the production graph, calibrated on the inputs it served (the tiny graph is slower in int8: allowed)
    quantized = json.loads(shiftwatch(settings, "retrain", "quantize", "--model", MODEL, "--allow-slower"))
    assert quantized["version"] == "v2" and quantized["quantization"]["top1_agreement"] >= 0.97
    assert quantized["quantization"]["labeled"] > 0 and quantized["quantization"]["accuracy_int8"] >= quantized["quantization"]["accuracy_fp32"] - 0.01
    # 6. shadow: int8 answers every request beside fp32
    rollout = json.loads(shiftwatch(settings, "rollout", "start", "--model", MODEL, "--version", "v2", "--steps", "0.5,1.0",
                                    "--plan", json.dumps(PLAN), "--json"))  # fmt: skip
    rollout_id = rollout["id"]
    time.sleep(1.0)
    traffic.send("shadow", 3, 60)
    decision, reasons = tick(settings)
    assert decision == "advance", reasons
    # 7. canary: half the clients, then all; the audit slice labels both arms, so the accuracy test can decide
    for step in range(2):
        step_start = datetime.now(UTC)
        traffic.send(f"canary{step}", 4 + step, 120)
        label_round(settings, traffic, tmp_path, f"canary{step}", since=step_start)
        decision, reasons = tick(settings)
        assert decision == ("advance" if step == 0 else "await_approval"), reasons
    # 8. approve: a person's decision, no --force and no reason needed: the SPRT said "not worse"
    approved = json.loads(shiftwatch(settings, "rollout", "approve", str(rollout_id), "--json"))
    assert approved["state"] == "production"
    time.sleep(1.0)
    assert traffic.send("after", 6, 20) > 0.95
    versions = {v["version"]: v["state"] for v in api.get(f"/v1/models/{MODEL}/versions").json()}
    assert versions == {"v1": "retired", "v2": "production"}
