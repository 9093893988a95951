"""The whole demo, act by act: the order of the story lives here and nowhere else."""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from shiftwatch.app import create_app
from shiftwatch.demo import acts, concept_lap, loop
from shiftwatch.demo.api import Api
from shiftwatch.demo.realistic import resnet_subject
from shiftwatch.demo.servers import ApiServer, WebhookReceiver, free_port
from shiftwatch.demo.shell import Shell
from shiftwatch.demo.stage import Fact, Scale, Service, Stage, Subject
from shiftwatch.demo.summary import phases, print_summary, rollout_sections, write_html
from shiftwatch.demo.tokens import issue_tokens, login_hint
from shiftwatch.labeling.studio_links import serve_env, serve_port, serving_port
from shiftwatch.secret_key import ensure_secret_key
from shiftwatch.settings import Settings, load_settings

WEBHOOK_SECRET = "demo-webhook-secret"


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the story produced, for the test and for callers that embed the demo."""

    summary_path: Path
    database_url: str
    accuracy: dict[str, float | None]
    facts: dict[str, Fact]
    missing: list[str]


def demo_settings(out_dir: Path, receiver: WebhookReceiver, scale: Scale, laps: int, concept: bool = False) -> Settings:
    """Settings for the demo's own store, webhook receiver and pace (the server's jobs tick every second)."""
    wanted: dict[str, Any] = {
        "database_url": f"sqlite:///{out_dir.resolve() / 'shiftwatch.db'}",
        "data_dir": out_dir.resolve() / "data",
        "alert_webhooks": [receiver.url],
        "auth_required": True,  # the real path: every client and person below holds a scoped token
        "scheduler_enabled": True,  # as `shiftwatch serve`: the server's detector, webhook and rollout jobs run
        "alert_webhook_secrets": {receiver.url: WEBHOOK_SECRET},
        "detector_tick_seconds": 1,
        "rollout_tick_seconds": 1,
        # The demo asks for each labeling batch itself (POST /v1/labeling/select), right after the alert and
        # during the canary: the periodic job would spend the budget on clean traffic before the story needs it.
        "labeling_sync_interval_s": 24 * 3600,
        "gateway_refresh_seconds": 0.5,
        # A few thousand rows a lap: every embedding is kept, as a small deployment would (the sample pays
        # at fleet volume: docs/scaling.md, "Embeddings kept where they pay").
        "embedding_keep_rate": 1.0,
        # Each lap's post-alert batch and the canary's audit rounds, in one day, with room to spare.
        "labeling_daily_budget": (4 * scale.labels + loop.ALERT_AUDIT_LABELS) * laps,
        "labeling_batch_size": scale.labels,
        **(concept_lap.labeling_settings(wanted_budget=4 * scale.labels * laps) if concept else {}),
    }
    return load_settings(**wanted)


def shell_environment(settings: Settings) -> dict[str, str]:
    """The SHIFTWATCH_* variables that point a `shiftwatch` command at the demo's store, as `serve` has it."""
    return {
        "SHIFTWATCH_DATABASE_URL": settings.database_url,
        "SHIFTWATCH_DATA_DIR": str(settings.data_dir),
        "SHIFTWATCH_PUBLIC_URL": settings.public_url,
        "SHIFTWATCH_LABELING_DAILY_BUDGET": str(settings.labeling_daily_budget),
        "SHIFTWATCH_LABELING_BATCH_SIZE": str(settings.labeling_batch_size),
    }


def prepare(out_dir: Path, console: Console, subject: Subject, auto_approve: bool, laps: int, concept: bool = False) -> Stage:
    """A fresh output folder, a webhook receiver, settings pointing at both, a migrated store and its tokens."""
    for name in ("shiftwatch.db", "shiftwatch.db-wal", "shiftwatch.db-shm", "summary.html"):
        (out_dir / name).unlink(missing_ok=True)
    for folder in ("data", "labels"):
        shutil.rmtree(out_dir / folder, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    receiver = WebhookReceiver(secret=WEBHOOK_SECRET).start()
    settings = demo_settings(out_dir, receiver, subject.scale, laps, concept)
    shell = Shell(shell_environment(settings), console)
    tokens = issue_tokens(shell, settings)
    if tokens.label_studio:
        settings = settings.model_copy(update={"label_studio_callback_token": tokens.label_studio})
    stage = Stage(settings=settings, shell=shell, out_dir=out_dir, console=console, subject=subject,
                  auto_approve=auto_approve, laps=laps, receiver=receiver, tokens=tokens)
    stage.resources.append(receiver)
    return stage


def start_api(stage: Stage) -> str:
    """The real app (API, gateway, console, scheduled jobs) on a loopback port, with auth on as `shiftwatch serve`
    has it; its URL."""
    key = ensure_secret_key(stage.settings)
    if key.created:
        stage.say(f"Secret key (signs console sessions and links): generated and saved to [cyan]{key.path}[/] "
                  "(mode 0600), as `shiftwatch serve` does on its first start.")
    # With Label Studio, serve where its image links and webhook point (SHIFTWATCH_PUBLIC_URL) when that port is
    # free; otherwise any port, and links the server and the CLI print (alerts, rollouts) point at this server.
    port = serving_port(stage.settings) or free_port()
    keeps_public_url = bool(stage.settings.label_studio_url)
    live = stage.settings.model_copy(update={"port": port} if keeps_public_url else
                                     {"public_url": f"http://127.0.0.1:{port}", "port": port})
    stage.shell.environment.update(shell_environment(live))
    # The server's jobs tick every second here; APScheduler's note that a slow run made it skip a tick is noise.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    server = ApiServer(create_app(live), port=port).start()
    stage.resources.append(server)
    stage.server = Api(server.url, stage.tokens.operator)
    stage.resources.append(stage.server)
    stage.say(f"API, gateway and console on [cyan]{server.url}[/] (real uvicorn on loopback); "
              f"alert webhooks go to a receiver at [cyan]{stage.receiver.url}[/].")
    stage.say("Auth is on: without a token the API and console answer 401 (only /health and the API description "
              "are public). The demo issued its tokens "
              "(`shiftwatch token create` does the same): demo-gateway (ingest) for its clients, and for you, "
              f"to watch along in the console: {login_hint(server.url, stage.tokens)}.")
    return server.url


def run_demo(
    out_dir: Path, *, auto_approve: bool, fast: bool = False, realistic: bool = False, laps: int = 1,
    console: Console | None = None, subject: Subject | None = None, concept: bool = False,
) -> DemoResult:
    """The story on the digits CNN (``fast``: less of it), on the realistic ResNet example, or on ``subject``;
    ``laps`` times round the loop (a second lap: a second shift, answered by the promoted version's successor);
    ``concept``: the last lap is a concept drift (a class redefined, the inputs unchanged: concept_lap.py)."""
    console = console or Console()
    subject = subject or (resnet_subject() if realistic else acts.digits_subject(fast))
    stage = prepare(out_dir, console, subject, auto_approve, laps, concept)
    try:
        sections = rollout_sections(stage, tell(stage, concept))  # the report comes from the server, while it runs
    finally:
        stage.stop_all()
    return finish(stage, console, sections)


def tell(stage: Stage, concept: bool = False) -> int | None:
    """The acts in order. Each later act needs the one before it: a missing piece ends the story there.

    Returns the last rollout's id (the summary links its report).
    """
    scale = stage.scale
    with stage.act(1, "the store and the API"):
        acts.open_store(stage)
        api_url = start_api(stage)
    with stage.act(2, "the reference model"):
        if not acts.bootstrap_model(stage):
            return None
    with stage.act(3, "deploy and serve production traffic"):
        service = acts.deploy(stage, api_url)
        acts.stream(stage, service, scale.clean_requests, "clean", "clean traffic")
        acts.watch_reference(stage, service.traffic, "v1", stage.started_at)
    rollout_id = None
    for lap in range(1, stage.laps + 1):
        stage.lap = lap
        if lap > 1:
            stage.console.rule(f"[bold]Lap {lap}: the world changes again")
        last_is_concept = concept and lap == stage.laps
        rollout_id, promoted = concept_lap.tell(stage, service) if last_is_concept else tell_lap(stage, service)
        if not promoted:
            return rollout_id
    return rollout_id


def tell_lap(stage: Stage, service: Service) -> tuple[int | None, bool]:
    """Acts 4-10 once: a drift, the alert on production, labels, a candidate, its rollout and promotion."""
    scale = stage.scale
    production = stage.api.version_in(stage.model, "production") or "v1"
    with stage.act(4, "the world changes"):
        drift_started_at = acts.inject_drift(stage, service.traffic)
        acts.stream(stage, service, scale.drift_requests, stage.lap_phase("drift"), "drifted traffic")
        acts.show_stored(stage, service.traffic)
    with stage.act(5, "the detector notices"):
        if not loop.detect(stage, service, production):
            return None, False
    with stage.act(6, "labels for what changed"):
        if not loop.label(stage, service, drift_started_at):
            return None, False
    with stage.act(7, "a candidate model"):
        candidate = loop.retrain(stage)
        if candidate is None:
            return None, False
    rollout_id, promoted = loop.roll_out_and_approve(stage, service, candidate)
    if not promoted:
        return rollout_id, False
    with stage.act(10, "accuracy recovered"):
        acts.stream(stage, service, scale.recovered_requests, stage.lap_phase("recovered"), "traffic after promotion")
        acts.show_stored(stage, service.traffic)
        if stage.lap < stage.laps:
            loop.carried_over(stage, service)
    return rollout_id, True


def served_url(settings: Settings) -> str:
    """Where `serve_command`'s server is reached: SHIFTWATCH_PUBLIC_URL, else loopback on its port (Settings)."""
    return settings.public_url


def serve_command(settings: Settings) -> str:
    """A shell line that serves this run's store again: the installed ``shiftwatch`` by its absolute
    path (a new shell has no activated virtualenv) and the port said explicitly."""
    script = Path(sys.executable).parent / "shiftwatch"
    program = shlex.quote(str(script)) if script.exists() else f"{shlex.quote(sys.executable)} -m shiftwatch"
    return (f"{serve_env(settings)}SHIFTWATCH_DATABASE_URL={shlex.quote(settings.database_url)} "
            f"SHIFTWATCH_DATA_DIR={shlex.quote(str(settings.data_dir))} "
            f"{program} serve --host {settings.host} --port {serve_port(settings)}")


def finish(stage: Stage, console: Console, sections: list[tuple[str, str]]) -> DemoResult:
    """The summary table, the HTML page, how to look around afterwards, and what the story produced."""
    print_summary(stage)
    path = write_html(stage, sections)
    settings = stage.settings
    console.print(f"HTML summary: [cyan]{path}[/]")
    console.print("To browse the console over this run's data (in any shell, no virtualenv needed):\n"
                  f"  {serve_command(settings)}\n  then {login_hint(served_url(settings), stage.tokens)}",
                  highlight=False, soft_wrap=True)
    return DemoResult(
        summary_path=path,
        database_url=settings.database_url,
        accuracy={phase: stage.timeline.accuracy(phase) for phase, _ in phases(stage.laps)},
        facts=dict(stage.facts),
        missing=list(stage.missing),
    )
