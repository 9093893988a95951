"""Two laps of the loop on a model defined only in this file, through the CLI and HTTP only, as a newcomer runs it.

A small PyTorch net (``build`` below) is trained by the "user" with a plain torch loop, registered with
``shiftwatch retrain register --factory``, served by a real ``shiftwatch serve`` process, drifted twice
(faded images, then noisy ones), and each time: the production version's detectors alert, labels come
in as a file through ``shiftwatch labeling import``, ``shiftwatch retrain`` makes the next version from
the current one, and the rollout reaches approval on labels from the audit slice, without ``--force``.
Nothing here opens the server's database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.support.own_model import render
from tests.support.walk import (
    ALL_SCOPES,
    Cli,
    Clients,
    Http,
    accuracy,
    label_queue,
    label_sample,
    last_json,
    new_port,
    served,
    store_environment,
    wait_for,
)

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

MODEL = "glyphs"
CLASS_NAMES = [str(i) for i in range(10)]
FACTORY = "tests.laps.test_two_laps:build"
INPUT_SPEC = {"shape": [3, 56, 56], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
# A world: (seed, n) -> (uint8 images, labels) as the cameras send them in a lap.
World = Callable[[int, int], tuple[np.ndarray, np.ndarray]]
# Small steps and a wide accuracy margin so a few hundred requests decide: the fixed candidates here are
# 40+ points better on the drifted traffic, so the SPRT says "not worse" after a few dozen audit labels.
# Agreement and confidence guardrails off: a fix disagrees with, and may be less sure than, a confidently wrong model.
PLAN = {"min_shadow_pairs": 40, "min_step_predictions": 40, "min_agreement": 0.0, "max_confidence_drop": 1.0,
        "latency_budget_ms": 5000, "accuracy_margin": 0.1}


def build():
    """The user's network: three stride-2 conv blocks (56 -> 7), a 32-d hidden layer and a linear head."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


def train_outside_shiftwatch(images: np.ndarray, labels: np.ndarray, path: Path, epochs: int = 6) -> Path:
    """The user's own training loop, with the preprocessing INPUT_SPEC declares; a plain state_dict."""
    torch.manual_seed(0)
    module = build()
    x = torch.from_numpy(((images.astype(np.float32) / 255.0 - 0.5) / 0.25).transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(labels)
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    module.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(module(x[batch]), y[batch]).backward()
            optimizer.step()
    torch.save(module.state_dict(), path)
    return path


def faded(images: np.ndarray, seed: int) -> np.ndarray:
    """Lap 1's shift: fogged lenses, a quarter of the contrast around mid-grey (the user's net: 20 % on these)."""
    return np.round(images.astype(np.float32) * 0.25 + 0.375 * 255).astype(np.uint8)


def noisy(images: np.ndarray, seed: int) -> np.ndarray:
    """Lap 2's shift: a failing sensor's noise (sigma 70 of 255); the net fine-tuned on faded images got ~40 %."""
    noise = np.random.default_rng(seed).normal(0.0, 70.0, images.shape)
    return np.clip(images.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def camera(shift: Callable[[np.ndarray, int], np.ndarray]) -> World:
    """The world of a lap: the digits as a changed camera sends them."""

    def world(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = render(seed, n)
        return shift(images, seed), labels

    return world


def test_two_laps_on_a_model_defined_in_the_test_through_cli_and_http_only(tmp_path: Path) -> None:
    port = new_port()
    cli = Cli(store_environment(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, port), tmp_path)
    token = cli.run("token", "create", "--name", "newcomer", *[a for s in ALL_SCOPES for a in ("--scope", s)]).stdout.strip()
    images, labels = render(0, 900)
    np.savez(tmp_path / "reference.npz", images=images, labels=labels)
    # Train on the split retraining will use (its gate scores on test.npz, which v1 must not have seen).
    cli.run("retrain", "split-reference", str(tmp_path / "reference.npz"), "--out", str(tmp_path / "splits"))
    with np.load(tmp_path / "splits" / "train.npz") as train:
        weights = train_outside_shiftwatch(train["images"], train["labels"], tmp_path / "weights.pt", epochs=8)
    registered = json.loads(cli.run(
        "retrain", "register", "--model", MODEL, "--classes", ",".join(CLASS_NAMES), "--factory", FACTORY,
        "--weights", str(weights), "--input-spec", json.dumps(INPUT_SPEC),
        "--reference-set", str(tmp_path / "reference.npz")).stdout)
    assert registered["state"] == "production"

    with served(cli, port, tmp_path / "serve.log") as url:
        http = Http(url, token)
        clients = Clients(http, MODEL)
        start = _now()
        clean, clean_labels = render(11, 300)
        assert accuracy(clients.send(clean, clean_labels), clean_labels) > 0.8
        http.call("PUT", f"/v1/models/{MODEL}/versions/v1/reference", {"start": start, "end": _now()})
        http.post("/v1/detector-configs", {"model": MODEL, "version": "v1", "detector": "mmd", "window_last_n": 150,
                                           "schedule_seconds": 1, "confirm_runs": 2, "alpha": 0.01})

        measured = [run_lap(http, cli, clients, world, lap, tmp_path) for lap, world in enumerate((camera(faded), camera(noisy)), start=1)]
        for during, recovered in measured:
            assert recovered > during + 0.15, measured
        states = {v["version"]: v["state"] for v in http.get(f"/v1/models/{MODEL}/versions")}
        assert states == {"v1": "retired", "v2": "retired", "v3": "production"}


def run_lap(http: Http, cli: Cli, clients: Clients, world: World, lap: int, folder: Path) -> tuple[float, float]:
    """One lap: drift, alert on production, labels by file, retrain, rollout to approval; accuracy during and after."""
    production = f"v{lap}"
    shifted_at = _now()
    drifted, drifted_labels = world(100 + lap, 300)
    during = accuracy(clients.send(drifted, drifted_labels), drifted_labels)
    alert = wait_for(lambda: _open_alerts(http, production, clients, world, lap), 120,
                     f"an alert on {production} (lap {lap})")
    assert alert["version"] == production

    cli.run("labeling", "select", "--model", MODEL, "--hours", "1", "--batch-size", "300")
    queued = label_queue(http, cli, clients, CLASS_NAMES, folder / f"labels-{lap}.csv")
    assert queued >= 30  # the audit slice at least (10 % of the batch)
    if queued < 200:  # a confidently wrong model looks certain: the policy finds few uncertain samples
        label_sample(http, cli, clients, CLASS_NAMES, production, shifted_at, 200 - queued, folder / f"sample-{lap}.csv")
    ran = cli.run("retrain", "--model", MODEL, "--compress", "none", "--epochs", "4", "--lr", "5e-4")
    candidate = last_json(ran.stdout)["version"]
    assert candidate == f"v{lap + 1}"

    rollout = json.loads(cli.run("rollout", "start", "--model", MODEL, "--version", candidate, "--steps", "0.5",
                                 "--plan", json.dumps(PLAN), "--json").stdout)
    state = _drive_rollout(http, cli, clients, world, rollout["id"], lap, folder)
    assert state["last_decision"]["decision"] == "await_approval", (state["state"], state["last_decision"])
    cli.run("rollout", "approve", str(rollout["id"]))  # no --force, no --reason
    after = http.get(f"/v1/rollouts/{rollout['id']}")
    assert after["state"] == "production" and not any(entry["forced"] for entry in after["audit"])

    wait_for(lambda: clients.send(*world(300, 1))[0]["version"] == candidate, 30, f"{candidate} serving")
    recovered_images, recovered_labels = world(200 + lap, 300)
    recovered = accuracy(clients.send(recovered_images, recovered_labels), recovered_labels)
    # The promoted version is watched as its predecessor was; the old version's alerts are closed.
    assert http.get("/v1/detector-configs", model=MODEL, version=candidate)
    assert http.get(f"/v1/models/{MODEL}/versions/{candidate}/reference")["n"] > 0
    assert not http.get("/v1/alerts", model=MODEL, version=production, state="open")
    return during, recovered


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _open_alerts(http: Http, version: str, clients: Clients, world: World, lap: int) -> dict | None:
    found = http.get("/v1/alerts", model=MODEL, version=version, state="open")
    if found:
        return found[0]
    images, labels = world(400 + lap * 10 + clients.sent % 7, 150)  # a new window for a confirming run
    clients.send(images, labels)
    return None


def _drive_rollout(http: Http, cli: Cli, clients: Clients, world: World, rollout_id: int, lap: int, folder: Path) -> dict:
    """Traffic in batches; after each, the audit slice is queued and labeled, until the controller waits for a person."""
    for batch in range(40):
        images, labels = world(1000 + lap * 100 + batch, 60)
        clients.send(images, labels)
        state = http.get(f"/v1/rollouts/{rollout_id}")
        if state["state"] == "canary":
            cli.run("labeling", "select", "--model", MODEL, "--hours", "1", "--batch-size", "200")
            label_queue(http, cli, clients, CLASS_NAMES, folder / f"labels-{lap}-{batch}.csv")
        state = http.get(f"/v1/rollouts/{rollout_id}")
        if state["state"] not in ("shadow", "canary") or state["last_decision"].get("decision") == "await_approval":
            return dict(state)
    return dict(http.get(f"/v1/rollouts/{rollout_id}"))
