"""The ``shiftwatch`` command: the root, ``serve`` and ``db``, and every domain's commands added by name.

Each CLI module holds one module-level ``app`` (a ``typer.Typer``) with its commands; this module
adds it as a group (``add_typer(..., name=...)``) or, without a name, merges its commands into the
root. Start-up stays fast because every CLI module imports only typer, rich, the standard library
and light project modules at module level; what a command needs (SQLAlchemy, numpy, the
detectors, uvicorn) is imported inside it. ``tests/shiftwatch/test_cli_startup.py`` holds this.
"""

from __future__ import annotations

import sys

import typer

from shiftwatch import alerts_cli, detectors_cli, models_cli, tokens_cli
from shiftwatch import demo as demo_cli
from shiftwatch.cli_context import settings_or_exit
from shiftwatch.cli_output import tolerate_closed_pipes
from shiftwatch.collector import broker_cli
from shiftwatch.collector import cli as collector_cli
from shiftwatch.dashboards import cli as dashboards_cli
from shiftwatch.detectors import check_cli
from shiftwatch.detectors import cli as detect_cli
from shiftwatch.errors import ShiftwatchError
from shiftwatch.labeling import cli as labeling_cli
from shiftwatch.retrain import cli as retrain_cli
from shiftwatch.rollout import cli as rollout_cli

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Keep vision models honest in production.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision."""
    from shiftwatch.migrate import upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url)
    typer.echo(f"schema up to date at {settings.database_url}")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="bind address (default from settings: 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port (default from settings: 8000)"),
) -> None:
    """Migrate the schema, then serve the API, console and schedulers."""
    import uvicorn

    from shiftwatch.app import create_app
    from shiftwatch.detectors.links import served_public_url
    from shiftwatch.exposure import prepare_to_serve
    from shiftwatch.serving import server_config

    settings = settings_or_exit()
    bind = host or settings.host
    given = settings.public_url if "public_url" in settings.model_fields_set else None
    public_url, notice = served_public_url(given, port or settings.port)
    settings = settings.model_copy(update={"public_url": public_url})
    for line in prepare_to_serve(settings, bind) + ([notice] if notice else []):  # migrates; exit 2 on an open address, no auth
        typer.echo(line, err=True)
    uvicorn.Server(server_config(create_app(settings), settings, bind, port)).run()


@app.command("serve-ray")
def serve_ray(
    model: str = typer.Option(..., help="the registered model to serve"),
    replicas: int = typer.Option(1, min=1, help="replicas of each version deployment"),
    min_replicas: int | None = typer.Option(None, min=0, help="autoscale each version between this..."),
    max_replicas: int | None = typer.Option(None, min=1, help="...and this many replicas"),
    address: str | None = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS, else a local one)"),
    host: str = typer.Option("127.0.0.1", help="Ray Serve's HTTP bind address"),
    port: int = typer.Option(8000, help="Ray Serve's HTTP port"),
) -> None:
    """Serve a model on Ray Serve (many nodes): a deployment per version behind the rollout-aware router."""
    from shiftwatch.rollout.ray_serve import Scaling, run

    if (min_replicas is None) != (max_replicas is None):
        raise typer.BadParameter("give both --min-replicas and --max-replicas (autoscaling) or neither")
    settings = settings_or_exit()
    run(settings, model, Scaling(replicas, min_replicas, max_replicas), address=address, host=host, port=port)


# Commands at the root (no name: merged), then the groups, in the order `shiftwatch --help` lists them.
app.add_typer(detect_cli.app)  # detect, estimate-accuracy
app.add_typer(check_cli.app)  # check
app.add_typer(collector_cli.app)  # replay-rejected
app.add_typer(broker_cli.app)  # ingest-worker
app.add_typer(demo_cli.app)  # demo
app.add_typer(db_app, name="db")
app.add_typer(broker_cli.ingest_app, name="ingest")
app.add_typer(labeling_cli.app, name="labeling")
app.add_typer(retrain_cli.app, name="retrain")
app.add_typer(rollout_cli.app, name="rollout")
app.add_typer(dashboards_cli.app, name="dashboards")
app.add_typer(tokens_cli.app, name="token")
app.add_typer(models_cli.app, name="models")
app.add_typer(alerts_cli.app, name="alerts")
app.add_typer(detectors_cli.app, name="detectors")


def main() -> None:
    tolerate_closed_pipes()  # `shiftwatch ... | head -1`: the command still finishes (and commits), quietly
    try:
        app()
    except ShiftwatchError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
