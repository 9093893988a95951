"""``shiftwatch detectors list|runs|disable|enable|work``: which detectors watch which versions, what their runs found,
and switching one off or on.

Views over the detector configs and runs, and the one change a person makes from a shell:
``enabled`` (``detectors/cli.py`` holds the one-off tests on ``.npy`` files, ``detect`` and
``estimate-accuracy``).
"""

from __future__ import annotations

import typer

from shiftwatch.cli_context import open_db, settings_or_exit
from shiftwatch.cli_output import JSON_OPTION, emit_json, emit_table, when

app = typer.Typer(no_args_is_help=True, help="Scheduled detectors and their runs.")


def _window(config) -> str:
    if config.window_last_n:
        return f"last {config.window_last_n}"
    return f"last {config.window_minutes} min" if config.window_minutes else "-"


@app.command("list")
def list_(
    model: str | None = typer.Option(None, "--model", help="one model (with --version)"),
    version: str | None = typer.Option(None, "--version", help="one version of --model"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Each detector config: the version it watches, method, window, schedule, alpha and whether it is on."""
    from shiftwatch.collector import registry
    from shiftwatch.detectors import configs
    from shiftwatch.detectors.schemas import DetectorConfigOut
    from shiftwatch.errors import Invalid

    if bool(model) != bool(version):
        raise Invalid("--model" if version else "--version", "give --model and --version together")
    db = open_db(settings_or_exit().database_url, migrate=False)
    with db.session() as session:
        version_id = registry.get_version(session, model, version).id if model and version else None
        rows = configs.list_configs(session, version_id)
        found = [DetectorConfigOut.model_validate(c) for c in rows]
        names = {c.model_version_id: _version_name(session, c.model_version_id) for c in rows}
    if as_json:
        emit_json([c.model_dump(mode="json") for c in found])
        return
    emit_table(
        ("id", "name", "model:version", "detector", "input", "window", "every", "alpha", "min effect", "confirm",
         "enabled"),
        [(c.id, c.name, names[c.model_version_id], c.detector, c.input, _window(c), f"{c.schedule_seconds} s",
          c.alpha, c.min_effect, c.confirm_runs, "yes" if c.enabled else "no") for c in found],
        title="detectors",
    )  # fmt: skip


def _switch(config_id: int | None, model: str | None, version: str | None, name: str | None, enabled: bool) -> None:
    """Set ``enabled`` on one config, named by id or by model, version and name; prints what it did."""
    from shiftwatch.collector import registry
    from shiftwatch.detectors import configs
    from shiftwatch.errors import Invalid

    by_name = (model, version, name)
    if (config_id is not None) == any(v is not None for v in by_name):
        raise Invalid("config", "give a detector config id, or --model, --version and --name (not both)")
    if config_id is None and None in by_name:
        missing = [flag for flag, v in zip(("--model", "--version", "--name"), by_name) if v is None]
        raise Invalid(missing[0], "give --model, --version and --name together")
    db = open_db(settings_or_exit().database_url, migrate=False)
    with db.session() as session:
        if config_id is None:
            version_id = registry.get_version(session, model, version).id  # type: ignore[arg-type]  # all given, checked above
            config_id = configs.find(session, version_id, name, f"{model}:{version}").id  # type: ignore[arg-type]
        row = configs.update(session, config_id, {"enabled": enabled})
        label = f"{row.name} ({row.detector}) on {_version_name(session, row.model_version_id)}"
    typer.echo(f"detector config {config_id} {'enabled' if enabled else 'disabled'}: {label}")


CONFIG_ARG = typer.Argument(None, help="detector config id (from `shiftwatch detectors list`)")
MODEL_OPT = typer.Option(None, "--model", help="or by name: the model (with --version and --name)")
VERSION_OPT = typer.Option(None, "--version", help="its version")
NAME_OPT = typer.Option(None, "--name", help="the config's name (the detector's, unless named otherwise)")


@app.command("disable")
def disable(
    config_id: int | None = CONFIG_ARG,
    model: str | None = MODEL_OPT,
    version: str | None = VERSION_OPT,
    name: str | None = NAME_OPT,
) -> None:
    """Stop scheduling a detector (and `check` skips it); its runs and alerts stay. `enable` turns it back on."""
    _switch(config_id, model, version, name, enabled=False)


@app.command("enable")
def enable(
    config_id: int | None = CONFIG_ARG,
    model: str | None = MODEL_OPT,
    version: str | None = VERSION_OPT,
    name: str | None = NAME_OPT,
) -> None:
    """Schedule a disabled detector again."""
    _switch(config_id, model, version, name, enabled=True)


def _version_name(session, model_version_id: int) -> str:
    from shiftwatch.collector.tables import Model, ModelVersion

    version = session.get(ModelVersion, model_version_id)
    model = session.get(Model, version.model_id) if version is not None else None
    return f"{model.name}:{version.version}" if model is not None and version is not None else str(model_version_id)


@app.command("runs")
def runs(
    config_id: int = typer.Argument(..., help="detector config id (from `shiftwatch detectors list`)"),
    limit: int = typer.Option(20, min=1, max=1000, help="the newest this many"),
    as_json: bool = JSON_OPTION,
) -> None:
    """The newest runs of one detector: statistic, p-value, effect, decision, window sizes."""
    from sqlalchemy import select

    from shiftwatch.detectors import configs
    from shiftwatch.detectors.schemas import DriftRunOut
    from shiftwatch.detectors.tables import DriftRun

    db = open_db(settings_or_exit().database_url, migrate=False)
    with db.session() as session:
        configs.get(session, config_id)  # NotFound names the id
        stmt = select(DriftRun).where(DriftRun.config_id == config_id).order_by(DriftRun.tick.desc()).limit(limit)
        found = [DriftRunOut.model_validate(r) for r in session.scalars(stmt)]
    if as_json:
        emit_json([r.model_dump(mode="json") for r in found])
        return
    emit_table(
        ("run", "tick", "status", "statistic", "p-value", "effect", "drift", "n ref", "n cur", "note"),
        [(r.id, when(r.tick), r.status, _num(r.statistic), _num(r.p_value),
          f"{_num(r.effect_size)} {r.effect_unit or ''}".strip(), "yes" if r.decision else "no", r.n_reference,
          r.n_current, r.note) for r in found],
        title=f"runs of detector {config_id}",
    )  # fmt: skip


@app.command("work")
def work(
    ticks: int | None = typer.Option(None, "--ticks", min=1, help="stop after this many ticks (default: run until stopped)"),
) -> None:
    """Run as a detector worker: the drift runs of every tick, split with the other workers and `serve` replicas.

    Start any number on PostgreSQL (docs/scaling.md); each due model version runs on one of them.
    """
    import logging
    import signal
    import threading

    from shiftwatch.detectors.worker import work as work_ticks

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the tick in hand, then exit
    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=True, read_url=settings.read_database_url)
    try:
        work_ticks(db, settings, ticks=ticks, stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        db.dispose()


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
