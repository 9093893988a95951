"""``shiftwatch rollout ...``: start a rollout, watch it, approve or reject it (a person), run the controller once."""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING

import typer

from shiftwatch.cli_context import open_db, settings_or_exit
from shiftwatch.cli_output import JSON_OPTION, emit_fields, emit_json, emit_table, wide_console
from shiftwatch.errors import Conflict, Invalid

if TYPE_CHECKING:  # the CLI imports lazily: `shiftwatch --help` stays fast
    from sqlalchemy.orm import Session

    from shiftwatch.rollout.schemas import RolloutOut
    from shiftwatch.rollout.tables import Rollout


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _print_status(out: RolloutOut, report_path: str | None = None) -> None:
    from rich.table import Table

    from shiftwatch.rollout.report import comparison_rows

    console = wide_console()
    console.print(
        f"[bold]rollout {out.id}[/bold] {out.model}: {out.candidate_version} vs production {out.baseline_version} "
        f"- [bold]{out.state}[/bold]" + (f" step {out.step + 1}/{len(out.plan['canary_steps'])} ({out.share:.0%})"
                                         if out.state == "canary" else "")
    )
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
    if out.audit:
        audit = Table("when", "who", "action", "from", "to", "forced", "reason", title="audit log")
        for entry in out.audit:
            audit.add_row(entry.ts.strftime("%Y-%m-%d %H:%M:%S"), entry.actor, entry.action, entry.from_state or "",
                          entry.to_state or "", "yes" if entry.forced else "", entry.reason)
        console.print(audit)



def _emit_rollout(out: RolloutOut, as_json: bool) -> None:
    """A rollout as the API returns it with --json, else the status view."""
    if as_json:
        emit_json(out.model_dump(mode="json"))
    else:
        _print_status(out)


def _emit_decision(session: Session, rollout: Rollout, as_json: bool) -> None:
    """After approve or reject: the new state in one line, or with --json the rollout as the API returns it."""
    from shiftwatch.rollout import status

    if as_json:
        emit_json(status.describe(session, rollout).model_dump(mode="json"))
    else:
        typer.echo(f"rollout {rollout.id} is now {rollout.state}")


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
    from pydantic import ValidationError

    from shiftwatch.rollout import controller, status
    from shiftwatch.rollout.schemas import RolloutPlan

    try:
        overrides = json.loads(plan_json)
        plan = RolloutPlan.model_validate(
            {**overrides, "canary_steps": [float(s) for s in steps.split(",") if s.strip()],
             "require_labels": require_labels}
        )
    except (ValueError, TypeError, ValidationError) as exc:
        raise Invalid("--plan", str(exc).splitlines()[-1]) from None
    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        rollout = controller.start_rollout(session, settings.data_dir, model, version, plan, actor=_actor())
        _emit_rollout(status.describe(session, rollout), as_json)



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

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        if rollout_id is None:
            found = status.list_rollouts(session)
            if as_json:
                emit_json([out.model_dump(mode="json") for out in found])
            else:
                emit_table(("id", "model", "candidate", "production", "state", "step"),
                           [(o.id, o.model, o.candidate_version, o.baseline_version, o.state, o.step)
                            for o in found], title="rollouts")  # fmt: skip
            return
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
            _print_status(out, path)



@app.command("approve")
def approve(
    rollout_id: int = typer.Argument(..., help="rollout id"),
    force: bool = typer.Option(False, "--force", help="approve although evidence is insufficient"),
    reason: str = typer.Option("", "--reason", help="why (required with --force; goes in the audit log)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Promote a canary to production (a person's decision, recorded in the audit log)."""
    from shiftwatch.rollout import controller

    db = open_db(settings_or_exit().database_url, migrate=False)
    with db.session() as session:
        rollout = controller.approve(session, rollout_id, actor=_actor(), force=force, reason=reason)
        _emit_decision(session, rollout, as_json)



@app.command("reject")
def reject(
    rollout_id: int = typer.Argument(..., help="rollout id"),
    reason: str = typer.Option(..., "--reason", help="why (goes in the audit log)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop a rollout; the candidate never reaches production."""
    from shiftwatch.rollout import controller

    db = open_db(settings_or_exit().database_url, migrate=False)
    with db.session() as session:
        rollout = controller.reject(session, rollout_id, actor=_actor(), reason=reason)
        _emit_decision(session, rollout, as_json)



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
