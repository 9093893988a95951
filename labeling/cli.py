"""``shiftwatch labeling status|select|audit|push|pull|export|import|retire``: the queue, its sync with Label Studio, labels as
files, and labels retired when a label definition changes.

The database and labeling's modules are imported inside the commands: building the CLI (``shiftwatch
--help``) must load neither SQLAlchemy nor numpy (``tests/test_cli_startup.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shiftwatch.cli_context import open_db, settings_or_exit
from shiftwatch.cli_output import JSON_OPTION, emit_fields
from shiftwatch.errors import Invalid, Unavailable

if TYPE_CHECKING:  # the CLI imports lazily: `shiftwatch --help` stays fast
    from shiftwatch.db import Database

ONE_MODEL = typer.Option(None, "--model", help="one model (default: every model)")
app = typer.Typer(no_args_is_help=True, help="The labeling queue and its sync with Label Studio.")


def _models(db: Database, model: str | None) -> list[str]:
    from shiftwatch.collector import registry

    with db.session() as session:
        return [model] if model else [m.name for m in registry.list_models(session)]


def _print(rows: list[dict], as_json: bool) -> None:
    """JSON (one object for one model, else a list) with --json; otherwise ``name: value`` lines per model."""
    if as_json:
        typer.echo(json.dumps(rows if len(rows) != 1 else rows[0], indent=2, default=str))
        return
    for row in rows:
        emit_fields(row)


@app.command("status")
def status(model: str | None = ONE_MODEL, as_json: bool = JSON_OPTION) -> None:
    """How many samples are pending, sent, labeled or skipped, why they were queued, and the last push error."""
    from shiftwatch.labeling.policy import Budget
    from shiftwatch.labeling.queue import queue_status

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        names = _models(db, model)
        _print([asdict(queue_status(session, name, Budget.of(settings, name).daily)) for name in names], as_json)


@app.command("select")
def select(
    model: str = typer.Option(..., help="model name"),
    hours: float = typer.Option(24.0, help="look at predictions of the last HOURS (every route, for the audit slice)"),
    batch_size: int | None = typer.Option(None, help="at most this many (default: settings.labeling_batch_size)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the selection policy and queue one batch: the audit slice of every route, then informative picks (within the daily budget)."""
    from shiftwatch.db import utcnow
    from shiftwatch.labeling.policy import Budget, select_for_labeling

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        result = select_for_labeling(
            session, model, Budget.of(settings, model, batch_size), start=utcnow() - timedelta(hours=hours)
        )
    _print([asdict(result)], as_json)


@app.command("audit")
def audit(
    alert: int = typer.Option(..., "--alert", help="the alert whose window to draw from"),
    labels: int | None = typer.Option(None, min=1, help="how many to draw (default: what the alert's harm asks for)"),
    design: str = typer.Option("auto", help="weighted (where CBPE is least sure, measured by the difference estimator), "
                               "uniform (the random slice), or auto: weighted where the alert's label-free estimate is reliable"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Queue the labels an alert asks for: a uniform draw of its window, the random slice its accuracy is measured on."""
    from shiftwatch.db import utcnow
    from shiftwatch.labeling.alert_audit import queue_alert_audit
    from shiftwatch.labeling.policy import Budget

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        result = queue_alert_audit(session, alert, labels, lambda model: Budget.of(settings, model), utcnow(),
                                   design=design)  # type: ignore[arg-type]  # checked there, named in the error
    _print([asdict(result)], as_json)


@app.command("push")
def push(model: str | None = ONE_MODEL, as_json: bool = JSON_OPTION) -> None:
    """Send pending tasks to Label Studio now (ignoring the retry backoff)."""
    from shiftwatch.labeling.studio import Studio
    from shiftwatch.labeling.sync import push as push_model

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    studio = Studio.from_settings(settings)
    results = [push_model(db, settings, name, studio=studio, force=True) for name in _models(db, model)]
    _print([asdict(r) for r in results], as_json)
    failed = [r for r in results if r.error]
    if failed:
        raise Unavailable(f"Label Studio: {failed[0].error}; {sum(r.pending for r in failed)} tasks stay pending")


@app.command("pull")
def pull(model: str | None = ONE_MODEL, as_json: bool = JSON_OPTION) -> None:
    """Fetch annotations (and deletions) from Label Studio: what the webhook may have missed."""
    from shiftwatch.labeling.studio import Studio
    from shiftwatch.labeling.sync import pull as pull_model

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    studio = Studio.from_settings(settings)
    pulled = [{"model": name, **asdict(pull_model(db, studio, name))} for name in _models(db, model)]
    _print(pulled, as_json)


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="labels: .csv with a header, or .jsonl; see docs/labeling.md", exists=True, dir_okay=False),
    model: str = typer.Option(..., help="model name (class names are that model's)"),
    annotator: str | None = typer.Option(None, help="who labeled, for rows without an annotator (default: import:FILE)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Store labels given outside Label Studio, keyed by prediction id, request id or input_ref: all rows or none.

    Columns: one of prediction_id, request_id, input_ref; label (class name or index); annotator (optional).
    A bad row refuses the file, each bad row listed (exit 2).
    """
    from shiftwatch.labeling.label_files import read_label_file
    from shiftwatch.labeling.label_import import import_labels

    settings = settings_or_exit()
    read = read_label_file(file)
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        result = import_labels(session, model, read.rows, annotator=annotator or f"import:{file.name}")
    _print([{**asdict(result), "unlabeled_rows": read.unlabeled}], as_json)


@app.command("retire")
def retire(
    model: str = typer.Option(..., help="model name"),
    before: str = typer.Option(..., help="labels given before this ISO date/time (naive means UTC) are retired"),
    label_class: str | None = typer.Option(None, "--class", help="only labels of this class (name or index): the one redefined"),
    reason: str = typer.Option("", help="why (kept with each retired label, for audit)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """A label definition changed: labels given under the old one are kept for audit, out of retraining and accuracy.

    A new label for a retired sample (an import, a Label Studio annotation) un-retires it: relabeling
    old samples under the new definition brings them back.
    """
    from shiftwatch.labeling.retire import parse_before, retire_labels

    settings = settings_or_exit()
    when = parse_before(before, "--before")
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        done = retire_labels(session, model, when, label_class, reason)
    row = {**asdict(done), "before": done.before.isoformat()}
    row["class"] = row.pop("label_class")
    _print([row], as_json)


@app.command("export")
def export(
    model: str = typer.Option(..., help="model name"),
    audit_only: bool = typer.Option(False, "--audit", help="only the audit slice (what accuracy and canaries count)"),
    out: Path | None = typer.Option(None, "--out", help="write here (.csv or .jsonl) instead of CSV on stdout"),
) -> None:
    """The open queue as a file to label anywhere: fill in the label column, then `labeling import` it.

    One row per open task, highest priority first: prediction_id, label (empty), image_url (a signed
    link), reason (audit for the random slice), route, predicted (the model's class, for reference).
    """
    from shiftwatch.labeling.input_links import InputLinks
    from shiftwatch.labeling.label_export import as_csv, as_jsonl, open_task_rows

    if out is not None and out.suffix.lower() not in (".csv", ".jsonl"):
        raise Invalid("--out", f"{out.name}: the name must end in .csv or .jsonl")
    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        rows = open_task_rows(session, model, InputLinks.of(settings), audit_only=audit_only)
    text = as_jsonl(rows) if out is not None and out.suffix.lower() == ".jsonl" else as_csv(rows)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"{len(rows)} open tasks of {model} written to {out}", err=True)
