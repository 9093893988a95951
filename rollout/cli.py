"""``shiftwatch rollout ...``: start a rollout, watch it, approve or reject it (a person), run the controller once."""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING, Any

import typer

from shiftwatch.cli_context import open_db, settings_or_exit
from shiftwatch.cli_output import JSON_OPTION, emit_fields, emit_json, emit_table, when, wide_console
from shiftwatch.errors import Conflict, Invalid
from shiftwatch.rollout.states import ROLLOUT_STATES

if TYPE_CHECKING:  # the CLI imports lazily: `shiftwatch --help` stays fast
    from shiftwatch.rollout.schemas import RolloutOut


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _print_status(out: RolloutOut, public_url: str, report_path: str | None = None) -> None:
    from rich.table import Table

    from shiftwatch.links import console_rollout_url
    from shiftwatch.rollout.report import comparison_rows

    console = wide_console()
    console.print(
        f"[bold]rollout {out.id}[/bold] {out.model}: {out.candidate_version} vs production {out.baseline_version} "
        f"- [bold]{out.state}[/bold]" + (f" step {out.step + 1}/{len(out.plan['canary_steps'])} ({out.share:.0%})"
                                         if out.state == "canary" else "")
    )
    console.print(f"console: {console_rollout_url(public_url, out.id)}")
    decision = out.last_decision or {}
    if decision:
        console.print(f"last decision: {decision.get('decision')} - {'; '.join(decision.get('reasons', []))}")
    if out.latest_comparison is not None:
        table = Table("metric", "production", "candidate", title=f"comparison ({out.latest_comparison.stage})")
        for row in comparison_rows(out.latest_comparison.metrics):
            table.add_row(*row)
        console.print(table)
    if out.compression_report:
        console.print("candidate report:")
        emit_fields(out.compression_report)
    if report_path:
        console.print(f"Evidently report of candidate vs production outputs: {report_path}")
    if out.state in ("rolled_back", "rejected"):
        console.print(f"next: `shiftwatch rollout retry {out.id}` rolls {out.candidate_version} out again as a new "
                      "rollout, or register a fixed model as a new version and start that")
    if out.audit:
        audit = Table("when", "who", "action", "from", "to", "forced", "reason", title="audit log")
        for entry in out.audit:
            audit.add_row(entry.ts.strftime("%Y-%m-%d %H:%M:%S"), entry.actor, entry.action, entry.from_state or "",
                          entry.to_state or "", "yes" if entry.forced else "", entry.reason)
        console.print(audit)



def _emit_rollout(out: RolloutOut, as_json: bool, public_url: str) -> None:
    """A rollout as the API returns it with --json, else the status view."""
    if as_json:
        emit_json(out.model_dump(mode="json"))
    else:
        _print_status(out, public_url)


def _emit_decision(out: RolloutOut, as_json: bool) -> None:
    """After approve or reject: the new state in one line, or with --json the rollout as the API returns it."""
    if as_json:
        emit_json(out.model_dump(mode="json"))
    else:
        typer.echo(f"rollout {out.id} is now {out.state}")


def _plan_changes(steps: str | None, require_labels: bool | None, plan_json: str) -> dict[str, Any]:
    """--plan's JSON object with --steps and --require-labels on top (those left out are not changed)."""
    try:
        changes = json.loads(plan_json)
        if not isinstance(changes, dict):
            raise TypeError("--plan must be a JSON object")
        if steps is not None:
            changes["canary_steps"] = [float(s) for s in steps.split(",") if s.strip()]
    except (ValueError, TypeError) as exc:
        raise Invalid("--plan" if steps is None else "--steps/--plan", str(exc).splitlines()[-1]) from None
    return changes | ({} if require_labels is None else {"require_labels": require_labels})


app = typer.Typer(no_args_is_help=True, help="Shadow, canary, approval and rollback of candidates.")


@app.command("start")
def start(
    model: str = typer.Option(..., "--model", help="model name"),
    version: str = typer.Option(..., "--version", help="the registered candidate version"),
    steps: str = typer.Option("0.05,0.25,0.5", help="canary shares, comma-separated"),
    require_labels: bool = typer.Option(True, help="approval needs enough labeled samples for the accuracy test"),
    plan_json: str = typer.Option("{}", "--plan", help='other plan fields as JSON, e.g. \'{"min_shadow_pairs": 50}\''),
    as_json: bool = JSON_OPTION,
) -> None:
    """Put a candidate in shadow behind production; the controller takes it from there."""
    from shiftwatch.rollout import controller, status
    from shiftwatch.rollout.schemas import validated_plan

    plan = validated_plan(_plan_changes(steps, require_labels, plan_json), "--plan")
    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        rollout = controller.start_rollout(session, settings.data_dir, model, version, plan, actor=_actor())
        out = status.describe(session, rollout)
    _emit_rollout(out, as_json, settings.public_url)  # after the commit: a reader that stops early cannot lose it



@app.command("retry")
def retry(
    rollout_id: int = typer.Argument(..., help="a rolled-back or rejected rollout"),
    steps: str | None = typer.Option(None, help="canary shares, comma-separated (default: the retried rollout's)"),
    require_labels: bool | None = typer.Option(None, help="change whether approval needs labels (default: unchanged)"),
    plan_json: str = typer.Option("{}", "--plan", help="plan fields to change, as JSON"),
    reason: str = typer.Option("", "--reason", help="why it is tried again (goes in the audit log)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Roll the same candidate version out again, from shadow, as a new rollout (the old one keeps its record)."""
    from shiftwatch.rollout import status
    from shiftwatch.rollout.retry import retry_rollout

    changes = _plan_changes(steps, require_labels, plan_json)
    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        out = status.describe(session, retry_rollout(session, settings.data_dir, rollout_id, actor=_actor(),
                                                     plan_changes=changes, reason=reason))  # fmt: skip
    _emit_rollout(out, as_json, settings.public_url)  # after the commit


def _list_rollouts(model: str | None, state: str | None, as_json: bool) -> None:
    from shiftwatch.rollout import status

    with open_db(settings_or_exit().database_url, migrate=False).session() as session:
        found = status.list_rollouts(session, model, state)
    if as_json:
        emit_json([out.model_dump(mode="json") for out in found])
        return
    emit_table(
        ("id", "model", "candidate", "production", "state", "share", "standing", "started", "updated"),
        [(o.id, o.model, o.candidate_version, o.baseline_version, o.state, f"{o.share:.0%}" if o.state == "canary" else "",
          o.standing, when(o.created_at), when(o.updated_at)) for o in found],
        title="rollouts",
    )  # fmt: skip


@app.command("list")
def list_(
    model: str | None = typer.Option(None, "--model", help="one model"),
    state: str | None = typer.Option(None, "--state", help=f"one state: {', '.join(ROLLOUT_STATES)}"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every rollout, newest first: its versions, state, canary share and what the controller holds."""
    _list_rollouts(model, state, as_json)


@app.command("status")
def show(
    rollout_id: int | None = typer.Argument(None, help="a rollout id; all rollouts when left out"),
    report: bool = typer.Option(
        False, help="also write the Evidently report of candidate vs production outputs (several MB) to DATA_DIR"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """The comparison table, the candidate's compression report and the audit log; --report writes the
    Evidently report (the API serves it at /v1/rollouts/{id}/report without writing a file)."""
    from shiftwatch.db import utcnow
    from shiftwatch.rollout import controller, status
    from shiftwatch.rollout.report import write_report

    if rollout_id is None:
        _list_rollouts(None, None, as_json)
        return
    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        rollout = controller.get_rollout(session, rollout_id)
        path = None
        if report:
            try:
                path = str(write_report(session, settings.data_dir, rollout, utcnow()))
            except Conflict:
                path = None
        out = status.describe(session, rollout)
        if as_json:
            emit_json(out.model_dump(mode="json") | {"report_file": path})
        else:
            _print_status(out, settings.public_url, path)



@app.command("approve")
def approve(
    rollout_id: int = typer.Argument(..., help="rollout id"),
    force: bool = typer.Option(False, "--force", help="approve although evidence is insufficient"),
    reason: str = typer.Option("", "--reason", help="why (required with --force; goes in the audit log)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Promote a canary to production (a person's decision, recorded in the audit log); its predecessor's
    detectors pass to it with a reference from its rollout, and the predecessor's alerts are resolved."""
    from shiftwatch.detectors.alerts import Outbox
    from shiftwatch.rollout import controller, status

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        approved = controller.approve(session, rollout_id, actor=_actor(), force=force, reason=reason,
                                      outbox=Outbox.of(settings))
        out = status.describe(session, approved)
    _emit_decision(out, as_json)  # after the commit


@app.command("reject")
def reject(
    rollout_id: int = typer.Argument(..., help="rollout id"),
    reason: str = typer.Option(..., "--reason", help="why (goes in the audit log)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop a rollout; the candidate never reaches production."""
    from shiftwatch.rollout import controller, status

    db = open_db(settings_or_exit().database_url, migrate=False)
    with db.session() as session:
        out = status.describe(session, controller.reject(session, rollout_id, actor=_actor(), reason=reason))
    _emit_decision(out, as_json)  # after the commit


@app.command("tick")
def tick(as_json: bool = JSON_OPTION) -> None:
    """Run the controller once now (the server runs it every rollout_tick_seconds)."""
    from dataclasses import asdict

    from shiftwatch.rollout import controller

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    outcomes = controller.tick(db, settings=settings)
    if as_json:
        emit_json([asdict(outcome) for outcome in outcomes])
        return
    for outcome in outcomes:
        typer.echo(f"rollout {outcome.rollout_id}: {outcome.state_before} -> {outcome.state_after} "
                   f"({outcome.decision}: {'; '.join(outcome.reasons)})")
