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

    from shiftwatch.collector.replay import replay_rejected as replay
    from shiftwatch.collector.spill import SpillDir, default_spill_dir
    from shiftwatch.collector.transport import Transport
    from shiftwatch.errors import Invalid

    try:
        transport = Transport.for_url(url, token=token, timeout_s=30.0, compress=False)
    except ValueError as exc:
        raise Invalid("--url", str(exc)) from None
    folder = spill_dir if spill_dir is not None else default_spill_dir(url)
    if not folder.is_dir():
        raise Invalid("--spill-dir", f"{folder} is not a folder")
    outcomes = replay(transport, SpillDir(folder), dry_run=dry_run)
    if as_json:
        emit_json([asdict(o) for o in outcomes])
    else:
        emit_table(("file", "outcome", "stored", "duplicates", "refused", "reason"),
                   [(o.file, o.outcome, o.stored, o.duplicates, o.refused, o.reason) for o in outcomes],
                   title=f"rejected batches in {folder}")  # fmt: skip
    if any(o.outcome in ("refused", "partly", "unsent") for o in outcomes):
        raise typer.Exit(1)
