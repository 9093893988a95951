"""The whole demo, act by act: the order of the story lives here and nowhere else."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from shiftwatch.db import Database
from shiftwatch.demo import acts
from shiftwatch.demo.servers import ApiServer, WebhookReceiver
from shiftwatch.demo.stage import Scale, Stage
from shiftwatch.demo.summary import print_summary, write_html
from shiftwatch.migrate import upgrade
from shiftwatch.settings import load_settings


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the story produced, for the test and for callers that embed the demo."""

    summary_path: Path
    database_url: str
    accuracy: dict[str, float | None]
    facts: dict
    missing: list[str]


def prepare(out_dir: Path, console: Console, scale: Scale, auto_approve: bool) -> Stage:
    """A fresh output folder, a webhook receiver, settings pointing at both, and a migrated store."""
    if (out_dir / "shiftwatch.db").exists():
        for name in ("shiftwatch.db", "shiftwatch.db-wal", "shiftwatch.db-shm"):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "data", ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    receiver = WebhookReceiver(secret="demo-webhook-secret").start()
    settings = load_settings(
        database_url=f"sqlite:///{out_dir.resolve() / 'shiftwatch.db'}",
        data_dir=out_dir.resolve() / "data",
        alert_webhooks=[receiver.url],
        scheduler_enabled=False,  # the demo runs each step itself, so the story is deterministic
    )
    upgrade(settings.database_url)
    stage = Stage(settings=settings, db=Database.connect(settings.database_url), out_dir=out_dir,
                  console=console, scale=scale, auto_approve=auto_approve)
    stage.resources.append(receiver)
    stage.facts["webhook_receiver"] = receiver.url
    return stage


def start_api(stage: Stage) -> ApiServer:
    from shiftwatch.app import create_app

    from shiftwatch.collector.client import Client

    server = ApiServer(create_app(stage.settings, stage.db)).start()
    stage.resources.append(server)
    stage.client = Client(server.url, spill_dir=stage.out_dir / "spill")
    stage.facts["console_url"] = f"{server.url}/console"
    return server


def run_demo(out_dir: Path, *, auto_approve: bool, fast: bool, console: Console | None = None) -> DemoResult:
    console = console or Console()
    scale = Scale.fast() if fast else Scale.full()
    stage = prepare(out_dir, console, scale, auto_approve)
    try:
        with stage.act(1, "the store and the API"):
            acts.open_store(stage)
            server = start_api(stage)
            stage.say(f"API and console on [cyan]{server.url}[/] (real uvicorn on loopback); "
                      "predictions are logged through the client SDK over HTTP")
        with stage.act(2, "the reference model"):
            acts.train_reference(stage)
        with stage.act(3, "deploy and serve production traffic"):
            acts.deploy(stage)
            acts.stream(stage, scale.clean_requests, "clean", "clean traffic")
        with stage.act(4, "the world changes"):
            acts.inject_drift(stage)
            acts.stream(stage, scale.drift_requests, "drift", "drifted traffic")
            acts.show_stored(stage)
        # Each later act needs the one before it: a missing piece ends the loop there, said plainly.
        loop = ((5, "the detector notices", acts.detect), (6, "labels for what changed", acts.label),
                (7, "a candidate model", acts.retrain), (8, "shadow, canary, approval, promotion", acts.roll_out))
        for number, title, act in loop:
            with stage.act(number, title):
                if not act(stage):
                    break
    finally:
        stage.stop_all()
    print_summary(stage)
    path = write_html(stage)
    console.print(f"HTML summary: [cyan]{path}[/]")
    from shiftwatch.demo.summary import PHASES

    return DemoResult(
        summary_path=path,
        database_url=stage.settings.database_url,
        accuracy={phase: stage.timeline.accuracy(phase) for phase, _ in PHASES},
        facts=dict(stage.facts),
        missing=list(stage.missing),
    )
