"""``shiftwatch replay-rejected``: resend the SDK's refused batches after their cause is fixed."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftwatch.cli_output import JSON_OPTION, emit_json, emit_table

app = typer.Typer()


@app.command("replay-rejected")
def replay_rejected(
    url: str = typer.Option(..., "--url", help="the server the SDK logs to, e.g. http://127.0.0.1:8000"),
    token: str | None = typer.Option(None, "--token", envvar="SHIFTWATCH_TOKEN", help="an ingest token"),
    spill_dir: Path | None = typer.Option(
        None, "--spill-dir", help="the Client's spill_dir (default: the Client's own for --url)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the rejected batches and why; send nothing"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Send each rejected-* batch again; what the server takes is deleted, the rest keeps its new reason.

    The server stores each batch's valid rows; a file is cut down to the rows it still refuses,
    each with its reason. Exit code 1 while any row is still refused or the server cannot be reached.
    """
    from dataclasses import asdict

    from shiftwatch.errors import Conflict, Invalid
    from shiftwatch_client.cli import COLUMNS, BadArgument, open_spill, still_refused
    from shiftwatch_client.replay import ReplayBusy
    from shiftwatch_client.replay import replay_rejected as replay

    try:
        transport, spill = open_spill(url, token, spill_dir)
        outcomes = replay(transport, spill, dry_run=dry_run)
    except BadArgument as exc:
        raise Invalid(exc.option, exc.why) from None
    except ReplayBusy as exc:
        raise Conflict(str(exc)) from None
    if as_json:
        emit_json([asdict(o) for o in outcomes])
    else:
        emit_table(COLUMNS,
                   [(o.file, o.outcome, o.stored, o.duplicates, o.refused, o.reason) for o in outcomes],
                   title=f"rejected batches in {spill.root}")  # fmt: skip
    if still_refused(outcomes):
        raise typer.Exit(1)
