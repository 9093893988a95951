"""The ``shiftwatch`` command: the root and the wiring commands; each domain adds its own.

Start-up stays fast because every CLI module imports only typer, rich, the standard library
and light project modules at module level; what a command needs (SQLAlchemy, numpy, the
detectors, uvicorn) is imported inside it. ``tests/shiftwatch/test_cli_startup.py`` holds this.
"""

from __future__ import annotations

import importlib
import sys

import typer

from shiftwatch.errors import ShiftwatchError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Keep vision models honest in production.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")

# Each domain's CLI module defines ``register(app)``, adding its commands or sub-apps.
CLI_MODULES = (
    "shiftwatch.detectors.cli",
    "shiftwatch.detectors.check_cli",
    "shiftwatch.labeling.cli",
    "shiftwatch.retrain.cli",
    "shiftwatch.rollout.cli",
    "shiftwatch.dashboards.cli",
    "shiftwatch.tokens_cli",
    "shiftwatch.models_cli",
    "shiftwatch.alerts_cli",
    "shiftwatch.detectors_cli",
    "shiftwatch.collector.cli",
    "shiftwatch.demo",
)


def settings_or_exit():
    """Load settings; bad configuration is a one-line message and exit code 2, like any bad input."""
    from pydantic import ValidationError

    from shiftwatch.settings import load_settings

    try:
        return load_settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "config"
        raise ShiftwatchError(f"configuration: SHIFTWATCH_{field.upper()}: {error['msg']}") from None


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
    from shiftwatch.exposure import prepare_to_serve
    from shiftwatch.serving import server_config

    from shiftwatch.detectors.links import with_served_port

    settings = settings_or_exit()
    bind = host or settings.host
    settings, notice = with_served_port(settings, port or settings.port)
    for line in prepare_to_serve(settings, bind) + ([notice] if notice else []):  # migrates; exit 2 on an open address, no auth
        typer.echo(line, err=True)
    uvicorn.Server(server_config(create_app(settings), settings, bind, port)).run()


_registered: set[str] = set()


def _register_domains() -> None:
    """Add every domain's commands to ``app``; once per module, so tests may call it again."""
    for name in CLI_MODULES:
        if name not in _registered:
            importlib.import_module(name).register(app)
            _registered.add(name)


def main() -> None:
    _register_domains()
    try:
        app()
    except ShiftwatchError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
