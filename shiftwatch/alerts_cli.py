"""``shiftwatch alerts list|show|ack|resolve``: the alert queue from a shell, ranked like the console."""

from __future__ import annotations

import getpass
from typing import Any

import typer

from shiftwatch.cli_context import open_db, settings_or_exit
from shiftwatch.cli_output import JSON_OPTION, emit_fields, emit_json, emit_table, when

app = typer.Typer(no_args_is_help=True, help="Drift alerts: list, show, acknowledge, resolve.")


def _harm(value: float | None, source: str | None) -> str:
    """Harm in words, named for what it measured: never a bare signed number that reads as an accuracy of -50."""
    if value is None:
        return "unknown"
    what = "mean-confidence points (a confidence drop, not accuracy)" if source == "confidence_drop" else "accuracy points"
    return f"{value:.1f} {what} lost" if value >= 0 else f"none ({-value:.1f} {what} gained)"


@app.command("list")
def list_(
    state: str | None = typer.Option(None, help="open | acknowledged | resolved (default: all)"),
    severity: str | None = typer.Option(None, help="low | medium | high"),
    model: str | None = typer.Option(None, "--model", help="one model"),
    version: str | None = typer.Option(None, "--version", help="one version of --model"),
    detector: str | None = typer.Option(None, help="one detector method, e.g. mmd"),
    limit: int = typer.Option(100, min=1, max=1000, help="at most this many"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Alerts ranked by estimated harm (accuracy points lost), then by recency, as the API lists them."""
    from shiftwatch.collector import registry
    from shiftwatch.detectors import alerts
    from shiftwatch.errors import Invalid

    if version and not model:
        raise Invalid("--version", "give --model too")
    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        version_ids = None
        if model:
            chosen = [registry.get_version(session, model, version)] if version else None
            version_ids = [v.id for v in chosen or registry.list_versions(session, model)]
        rows = alerts.list_alerts(
            session, state=state, severity=severity, model_version_ids=version_ids, detector=detector, limit=limit
        )
        found = [alerts.to_out(session, settings.public_url, a) for a in rows]
    if as_json:
        emit_json([a.model_dump(mode="json") for a in found])
        return
    emit_table(
        ("id", "state", "severity", "harm", "model:version", "detector", "runs", "updated", "title"),
        [(a.id, a.state, a.severity, _harm(a.estimated_harm, a.harm_source), f"{a.model}:{a.version}", a.detector, a.run_count,
          when(a.updated_at), a.title) for a in found],
        title="alerts",
    )  # fmt: skip


def _show(alert: Any) -> None:
    emit_fields({
        "alert": alert.id, "title": alert.title, "state": alert.state, "severity": alert.severity,
        "model": f"{alert.model}:{alert.version}", "detector": f"{alert.detector} (config {alert.config_id})",
        "p-value": None if alert.p_value is None else f"{alert.p_value:.4g}",
        "effect": f"{alert.effect_size:.4g} {alert.effect_unit}",
        "harm": (alert.harm or {}).get("sentence") or _harm(alert.estimated_harm, alert.harm_source),
        "runs": f"{alert.run_count} (runs {alert.first_run_id}..{alert.last_run_id})",
        "opened": when(alert.opened_at), "updated": when(alert.updated_at),
        "acknowledged": f"{when(alert.acknowledged_at)} by {alert.acknowledged_by}" if alert.acknowledged_at else None,
        "resolved": f"{when(alert.resolved_at)} by {alert.resolved_by}" if alert.resolved_at else None,
        "resolution": alert.resolution,
        "console": alert.console_url, "url": alert.url, "report": alert.report_url, "evidence": alert.evidence,
    })  # fmt: skip


@app.command("show")
def show(alert_id: int = typer.Argument(..., help="alert id"), as_json: bool = JSON_OPTION) -> None:
    """One alert with its evidence, estimated harm and where its report is."""
    from shiftwatch.detectors import alerts

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    with db.session() as session:
        found = alerts.to_out(session, settings.public_url, alerts.get(session, alert_id))
    if as_json:
        emit_json(found.model_dump(mode="json"))
    else:
        _show(found)


def _change(alert_id: int, as_json: bool, action: str) -> None:
    """Acknowledge or resolve as ``cli:<user>`` (what the alert records as who did it)."""
    from shiftwatch.db import utcnow
    from shiftwatch.detectors import alerts

    settings = settings_or_exit()
    db = open_db(settings.database_url, migrate=False)
    by = f"cli:{getpass.getuser()}"
    with db.session() as session:
        if action == "acknowledged":
            changed = alerts.acknowledge(session, alert_id, by, utcnow())
        else:
            changed = alerts.resolve(session, alerts.Outbox.of(settings), alert_id, by, utcnow())
        found = alerts.to_out(session, settings.public_url, changed)
    if as_json:
        emit_json(found.model_dump(mode="json"))
    else:
        typer.echo(f"alert {found.id} is {found.state}: {found.title}")


@app.command("ack")
def ack(alert_id: int = typer.Argument(..., help="alert id"), as_json: bool = JSON_OPTION) -> None:
    """Someone is on it: open -> acknowledged (again changes nothing; a resolved alert cannot be)."""
    _change(alert_id, as_json, "acknowledged")


@app.command("resolve")
def resolve(alert_id: int = typer.Argument(..., help="alert id"), as_json: bool = JSON_OPTION) -> None:
    """Done: the next confirmed drift on this detector opens a new alert."""
    _change(alert_id, as_json, "resolved")
