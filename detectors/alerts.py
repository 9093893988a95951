"""Alert lifecycle: open (after confirmed runs), update instead of duplicating, acknowledge, resolve; ranked by harm.

One unresolved alert per detector config (``alerts.open_key`` is unique). A flagged run on a
config with an open or acknowledged alert updates it; webhooks fire when an alert opens, when
its severity rises and when it is resolved, not on every update, so a long incident pages once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.detectors import harm, links, multiple_testing, webhooks
from shiftwatch.detectors.configs import ConfigSpec
from shiftwatch.detectors.schemas import AlertOut
from shiftwatch.detectors.tables import ALERT_STATES, SEVERITIES, Alert, DriftRun
from shiftwatch.errors import Conflict, Invalid, NotFound
from shiftwatch.settings import Settings

# An open alert's report is rewritten only when the effect grew or shrank by this factor (or severity rose).
MATERIAL_EFFECT_RATIO = 1.5


@dataclass(frozen=True, slots=True)
class Outbox:
    """Where an alert's news goes: the public URL its links are built on and the webhook endpoints."""

    public_url: str
    endpoints: tuple[webhooks.Endpoint, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> Outbox:
        targets = webhooks.endpoints(settings.alert_webhooks, settings.alert_webhook_secrets)
        return cls(public_url=settings.public_url, endpoints=tuple(targets))


@dataclass(frozen=True, slots=True)
class AlertChange:
    alert_id: int
    event: str  # "alert.opened", "alert.updated", "alert.escalated"
    replaced_report: str | None = None  # the report a new one superseded (deleted once committed)


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """What decides whether a flagged run changes an open alert materially."""

    severity: str
    effect_size: float
    has_report: bool


def open_alert(session: Session, config: ConfigSpec) -> OpenAlert | None:
    alert = session.scalar(select(Alert).where(Alert.open_key == config.id))
    if alert is None:
        return None
    return OpenAlert(severity=alert.severity, effect_size=alert.effect_size, has_report=alert.report_path is not None)


def changes_materially(alert: OpenAlert, estimate: harm.Harm | None, effect_size: float) -> bool:
    """A report is worth rewriting: severity rises, the effect moved by MATERIAL_EFFECT_RATIO, or there is none yet."""
    if not alert.has_report:
        return True
    if SEVERITIES.index(harm.severity(estimate)) > SEVERITIES.index(alert.severity):
        return True
    low, high = sorted((abs(alert.effect_size), abs(effect_size)))
    return high > low * MATERIAL_EFFECT_RATIO if low > 0 else high > 0


def _title(config: ConfigSpec, run: DriftRun, estimate: harm.Harm | None) -> str:
    effect = f"{run.effect_size:.3g} {run.effect_unit}"
    if estimate is None:
        impact = "accuracy impact unknown"
    else:
        impact = f"estimated accuracy {harm.describe(estimate.points)} than on the reference"
    return f"{config.name}: drift ({effect}; {impact})"[:500]


# How far back a confirming chain is looked for: flagged runs whose windows overlap are skipped over.
CHAIN_LOOKBACK = 50


def _previous_decisions(session: Session, config: ConfigSpec, tick: datetime, window_start: datetime | None) -> list[bool]:
    """The earlier runs that may confirm one at ``tick`` whose window starts at ``window_start`` (only other samples)."""
    needed = max(0, config.confirm_runs - 1)
    if needed == 0:
        return []
    stmt = (
        select(DriftRun.decision, DriftRun.window_start, DriftRun.window_end)
        .where(DriftRun.config_id == config.id, DriftRun.status == "ok", DriftRun.tick < tick)
        .order_by(DriftRun.tick.desc())
        .limit(CHAIN_LOOKBACK)
    )
    rows = ((bool(d), start, end) for d, start, end in session.execute(stmt))
    return multiple_testing.confirming_chain(rows, window_start, needed)


def would_alert(session: Session, config: ConfigSpec, tick: datetime, window_start: datetime | None) -> bool:
    """Whether a flagged run of ``config`` at ``tick`` would open or update an alert."""
    if session.scalar(select(Alert.id).where(Alert.open_key == config.id)) is not None:
        return True
    previous = _previous_decisions(session, config, tick, window_start)
    return multiple_testing.confirmed(previous, True, config.confirm_runs)


def apply_run(
    session: Session,
    outbox: Outbox,
    *,
    config: ConfigSpec,
    run: DriftRun,
    estimate: harm.Harm | None,
    summary: dict[str, Any],
    report_path: str | None,
    now: datetime,
) -> AlertChange | None:
    """Open or update the config's alert for a flagged run; None when the run is not (yet) confirmed."""
    alert = session.scalar(select(Alert).where(Alert.open_key == config.id))
    new_severity = harm.severity(estimate)
    if alert is None:
        if not multiple_testing.confirmed(
            _previous_decisions(session, config, run.tick, run.window_start), run.decision, config.confirm_runs
        ):
            return None
        alert = Alert(
            config_id=config.id,
            model_version_id=config.model_version_id,
            open_key=config.id,
            detector=config.detector,
            state="open",
            severity=new_severity,
            first_run_id=run.id,
            run_count=0,
            opened_at=now,
        )
        session.add(alert)
        event = "alert.opened"
    else:
        rising = SEVERITIES.index(new_severity) > SEVERITIES.index(alert.severity)
        event = "alert.escalated" if rising else "alert.updated"
        if rising:
            alert.severity = new_severity
    alert.title = _title(config, run, estimate)
    alert.last_run_id = run.id
    alert.run_count += 1
    alert.p_value = run.adjusted_p_value if run.adjusted_p_value is not None else run.p_value
    alert.effect_size, alert.effect_unit = float(run.effect_size or 0.0), run.effect_unit or ""
    alert.estimated_harm = None if estimate is None else estimate.points
    alert.harm_source = None if estimate is None else estimate.source
    replaced = alert.report_path if report_path and alert.report_path not in (None, report_path) else None
    alert.report_path = report_path or alert.report_path
    alert.evidence = summary
    alert.updated_at = now
    session.flush()
    if event != "alert.updated":
        _announce(session, outbox, alert, event, now)
    return AlertChange(alert_id=alert.id, event=event, replaced_report=replaced)


def _announce(session: Session, outbox: Outbox, alert: Alert, event: str, now: datetime) -> None:
    """Webhook deliveries of ``event`` for every configured endpoint, in the caller's transaction."""
    if outbox.endpoints:
        payload = to_out(session, outbox.public_url, alert).model_dump(mode="json")
        webhooks.enqueue(session, outbox.endpoints, alert.id, payload, event, now)


def get(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist")
    return alert


def report_file(session: Session, data_dir: Path, alert_id: int) -> Path:
    """The alert's Evidently report on disk; only a file inside ``data_dir/reports`` is ever handed out.

    ``report_path`` is relative to ``data_dir`` (detectors_0002 rewrote older absolute ones).
    """
    report_path = get(session, alert_id).report_path
    reports_dir = (Path(data_dir) / "reports").resolve()
    path = (Path(data_dir) / report_path).resolve() if report_path else None
    if path is None or path.parent != reports_dir or not path.is_file():
        raise NotFound(f"alert {alert_id} has no report")
    return path


def acknowledge(session: Session, alert_id: int, by: str, now: datetime) -> Alert:
    """Someone is on it: open -> acknowledged (again: no change). A resolved alert cannot be acknowledged."""
    alert = get(session, alert_id)
    if alert.state == "resolved":
        raise Conflict(f"alert {alert_id} is resolved")
    if alert.state == "open":
        alert.state, alert.acknowledged_at, alert.acknowledged_by, alert.updated_at = "acknowledged", now, by, now
        session.flush()
    return alert


def resolve(
    session: Session, outbox: Outbox, alert_id: int, by: str, now: datetime, resolution: str | None = None
) -> Alert:
    """Done: the next confirmed drift on this config opens a new alert. Resolving twice changes nothing.

    ``resolution``: why, when something other than a person resolves it (a promotion, with its link).
    """
    alert = get(session, alert_id)
    if alert.state != "resolved":
        alert.state, alert.open_key, alert.resolved_at, alert.resolved_by, alert.updated_at = (
            "resolved",
            None,
            now,
            by,
            now,
        )
        alert.resolution = None if resolution is None else resolution[:500]
        session.flush()
        _announce(session, outbox, alert, "alert.resolved", now)
    return alert


def list_alerts(
    session: Session,
    *,
    state: str | None = None,
    severity: str | None = None,
    model_version_ids: list[int] | None = None,
    detector: str | None = None,
    limit: int = 100,
) -> list[Alert]:
    """Alerts ranked by estimated harm (unknown harm last), then most recently updated."""
    if state is not None and state not in ALERT_STATES:
        raise Invalid("state", f"must be one of {', '.join(ALERT_STATES)}")
    if severity is not None and severity not in SEVERITIES:
        raise Invalid("severity", f"must be one of {', '.join(SEVERITIES)}")
    stmt = select(Alert)
    if state is not None:
        stmt = stmt.where(Alert.state == state)
    if severity is not None:
        stmt = stmt.where(Alert.severity == severity)
    if model_version_ids is not None:
        stmt = stmt.where(Alert.model_version_id.in_(model_version_ids))
    if detector is not None:
        stmt = stmt.where(Alert.detector == detector)
    stmt = stmt.order_by(
        Alert.estimated_harm.is_(None), Alert.estimated_harm.desc(), Alert.updated_at.desc(), Alert.id.desc()
    )
    return list(session.scalars(stmt.limit(limit)))


def to_out(session: Session, public_url: str, alert: Alert) -> AlertOut:
    """The one outward shape of an alert (API responses and webhook payloads)."""
    version = session.get(ModelVersion, alert.model_version_id)
    model = session.get(Model, version.model_id) if version is not None else None
    api, console = links.api_alert_url(public_url, alert.id), links.console_alert_url(public_url, alert.id)
    return AlertOut(
        id=alert.id,
        model=model.name if model is not None else "",
        version=version.version if version is not None else "",
        model_version_id=alert.model_version_id,
        config_id=alert.config_id,
        detector=alert.detector,
        state=alert.state,
        severity=alert.severity,
        title=alert.title,
        p_value=alert.p_value,
        effect_size=alert.effect_size,
        effect_unit=alert.effect_unit,
        estimated_harm=alert.estimated_harm,
        harm_source=alert.harm_source,
        run_count=alert.run_count,
        first_run_id=alert.first_run_id,
        last_run_id=alert.last_run_id,
        opened_at=alert.opened_at,
        updated_at=alert.updated_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        resolved_at=alert.resolved_at,
        resolved_by=alert.resolved_by,
        resolution=alert.resolution,
        url=api,
        report_url=f"{api}/report" if alert.report_path else None,
        console_url=console,
        console_report_url=f"{console}/report" if alert.report_path else None,
        evidence=alert.evidence,
    )
