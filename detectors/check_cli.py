"""``shiftwatch check --model M --version V``: run a version's detectors now instead of waiting for the next tick.

(``shiftwatch detect`` tests two .npy files offline; this one checks a registered version's
production window against its pinned reference, exactly like a scheduled tick.)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from shiftwatch.cli_context import open_db, settings_or_exit

if TYPE_CHECKING:  # the CLI imports lazily: `shiftwatch --help` stays fast
    from shiftwatch.detectors.schemas import CheckOut


def _table(result: CheckOut) -> None:
    from rich.table import Table

    from shiftwatch.cli_output import wide_console

    table = Table("config", "detector", "status", "drift", "p (Holm)", "effect", "n", "note")
    for run in result.runs:
        effect = "-" if run.effect_size is None else f"{run.effect_size:.3g} {run.effect_unit or ''}".strip()
        p_value = "-" if run.adjusted_p_value is None else f"{run.adjusted_p_value:.3g}"
        table.add_row(
            str(run.config_id), run.detector, run.status, "yes" if run.decision else "no", p_value, effect,
            str(run.n_current), run.note or "",
        )
    for quiet in result.quiet:
        table.add_row(str(quiet.config_id), quiet.name, "not run", "-", "-", "-", "-", quiet.note)
    wide_console().print(table)  # never cut: notes and ids stay whole


app = typer.Typer()


@app.command("check")
def check(
    model: str = typer.Option(..., "--model", help="registered model name"),
    version: str = typer.Option(..., "--version", help="its version"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Run a model version's enabled detectors now (a config with no new data since its last run only says so).

    Exit 1 when a detector failed: its run is recorded with the error, and stderr says which, one line each.
    """
    from shiftwatch.detectors.check import check as run_check
    from shiftwatch.detectors.links import console_alert_url
    from shiftwatch.detectors.runs import failure_line

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=True)
    try:
        result = run_check(db, settings, model, version)
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        _table(result)
        for alert_id in result.opened:
            typer.echo(f"alert opened: {console_alert_url(settings.public_url, alert_id)}")
        for alert_id in result.updated:
            typer.echo(f"alert updated: {console_alert_url(settings.public_url, alert_id)}")
    failed = [run for run in result.runs if run.status == "failed"]
    for run in failed:
        typer.echo(failure_line(run.config_id, run.detector, run.note), err=True)
    if failed:
        raise typer.Exit(1)
