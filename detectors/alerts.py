"""Alert lifecycle: open (after confirmed runs), update instead of duplicating, acknowledge, resolve; ranked by harm.

One unresolved alert per drift episode of a model version (issue 24): the first confirmed
detector opens it (``alerts.open_key`` = its config id, unique); a flagged run of any detector of
the same version while it is unresolved updates that alert and adds its evidence under
``evidence["detectors"]``, not a second page. Webhooks fire when an alert opens, when its
severity rises and when it is resolved, not on every update, so a long incident pages once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.detectors import drift_kind, harm, links, multiple_testing, webhooks
from shiftwatch.detectors.configs import ConfigSpec
from shiftwatch.detectors.schemas import AlertOut
from shiftwatch.detectors.tables import ALERT_STATES, SEVERITIES, Alert, DetectorConfig, DriftRun
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
    effect_size: float  # of the alert's own detector (the one that opened it)
    has_report: bool
    config_id: int = 0  # the detector config that opened it
    detectors: frozenset[int] = frozenset()  # config ids whose evidence it holds


def episode(session: Session, model_version_id: int) -> Alert | None:
    """The version's unresolved alert (its open drift episode), if any."""
    stmt = select(Alert).where(Alert.model_version_id == model_version_id, Alert.open_key.is_not(None))
    return session.scalar(stmt.order_by(Alert.opened_at, Alert.id).limit(1))


def open_alert(session: Session, config: ConfigSpec) -> OpenAlert | None:
    """The unresolved alert a flagged run of ``config`` would update: its version's open episode."""
    alert = episode(session, config.model_version_id)
    if alert is None:
        return None
    grouped = frozenset(int(key) for key in ((alert.evidence or {}).get("detectors") or {}))
    return OpenAlert(severity=alert.severity, effect_size=alert.effect_size, has_report=alert.report_path is not None,
                     config_id=alert.config_id, detectors=grouped | {alert.config_id})


def changes_materially(
    alert: OpenAlert, estimate: harm.Harm | None, effect_size: float, config_id: int | None = None
) -> bool:
    """A report is worth rewriting: severity rises, a detector joins, its effect moved by MATERIAL_EFFECT_RATIO, or none yet."""
    if not alert.has_report:
        return True
    if SEVERITIES.index(harm.severity(estimate)) > SEVERITIES.index(alert.severity):
        return True
    if config_id is not None and config_id != alert.config_id:
        return config_id not in alert.detectors  # another detector's effect is in other units: joining is the news
    low, high = sorted((abs(alert.effect_size), abs(effect_size)))
    return high > low * MATERIAL_EFFECT_RATIO if low > 0 else high > 0


def _title(name: str, run: DriftRun, estimate: harm.Harm | None, kind: str = "drift") -> str:
    effect = f"{run.effect_size:.3g} {run.effect_unit}"
    impact = "accuracy impact unknown: no reference confidence, accuracy estimator or labels" if estimate is None else estimate.headline()
    return f"{name}: {kind} ({effect}; {impact})"[:500]


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
    if episode(session, config.model_version_id) is not None:
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
    """Open the version's alert for a confirmed flagged run, or add the run to its open episode; None when not (yet) confirmed."""
    alert = episode(session, config.model_version_id)
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
    p_value = run.adjusted_p_value if run.adjusted_p_value is not None else run.p_value
    detectors = {**((alert.evidence or {}).get("detectors") or {}), str(config.id): {
        "name": config.name, "detector": config.detector, "run_id": run.id, "tick": run.tick.isoformat(),
        "p_value": p_value, "effect_size": float(run.effect_size or 0.0), "effect_unit": run.effect_unit or "",
        "input": config.input, "evidence": summary.get("detector", {}),
    }}
    names = [entry["name"] for entry in detectors.values()]
    kind = drift_kind.of_episode(session, config.model_version_id, detectors)
    alert.title = _title(" + ".join(names), run, estimate, kind.words)
    alert.last_run_id = run.id
    alert.run_count += 1
    if config.id == alert.config_id or event == "alert.opened":  # the headline numbers stay the opener's, in its units
        alert.p_value = p_value
        alert.effect_size, alert.effect_unit = float(run.effect_size or 0.0), run.effect_unit or ""
    alert.estimated_harm = None if estimate is None else estimate.points
    alert.harm_source = None if estimate is None else estimate.source
    replaced = alert.report_path if report_path and alert.report_path not in (None, report_path) else None
    alert.report_path = report_path or alert.report_path
    combined = {"decision": "drift", "detectors": names, "kind": kind.words, "why": kind.why,
                "rule": "Holm across the version's detectors at each tick; any detector significant and large enough"}
    alert.evidence = {**summary, "detectors": detectors, "combined": combined}
    if estimate is not None:
        alert.evidence["harm"] = estimate.to_dict()
    alert.updated_at = now
    session.flush()
    if event != "alert.updated":
        _announce(session, outbox, alert, event, now)
    return AlertChange(alert_id=alert.id, event=event, replaced_report=replaced)


HARM_HISTORY = 500  # entries an alert keeps of its harm over time (the console plots them)


def harm_entry(measured: harm.Harm, now: datetime) -> dict[str, Any]:
    """One point of an alert's harm over time: when, which source, the accuracy and its interval."""
    return {"at": now.isoformat(), "source": measured.source, "method": measured.method, "accuracy": measured.accuracy,
            "accuracy_interval": None if measured.accuracy_interval is None else list(measured.accuracy_interval)}


def record_harm(session: Session, outbox: Outbox | None, alert: Alert, measured: harm.Harm, now: datetime) -> bool:
    """Put a better-founded harm (labels that arrived) on an unresolved alert; False when nothing changed.

    Severity follows the measured harm both ways (labels may show a loud shift costs nothing); a
    rise is announced like any escalation.
    """
    stored = (alert.evidence or {}).get("harm")
    if stored is not None and stored == measured.to_dict():
        return False
    run, config = session.get(DriftRun, alert.last_run_id), session.get(DetectorConfig, alert.config_id)
    new_severity = harm.severity(measured)
    rising = SEVERITIES.index(new_severity) > SEVERITIES.index(alert.severity)
    alert.severity = new_severity
    if run is not None:
        combined = (alert.evidence or {}).get("combined") or {}
        names = " + ".join(combined.get("detectors") or [config.name if config is not None else alert.detector])
        alert.title = _title(names, run, measured, combined.get("kind", "drift"))
    alert.estimated_harm, alert.harm_source = measured.points, measured.source
    history = [*((alert.evidence or {}).get("harm_history") or []), harm_entry(measured, now)][-HARM_HISTORY:]
    alert.evidence = {**(alert.evidence or {}), "harm": measured.to_dict(), "harm_history": history}
    alert.updated_at = now
    session.flush()
    if rising and outbox is not None:
        _announce(session, outbox, alert, "alert.escalated", now)
    return True


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
        harm=(alert.evidence or {}).get("harm"),
        evidence=alert.evidence,
    )
