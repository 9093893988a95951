"""HTTP routes of the detectors: alerts (read / operate), detector configs and reference windows (operate)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, File, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from shiftwatch.collector import registry
from shiftwatch.db import utcnow
from shiftwatch.dependencies import DbDep, Operator, Reader, SettingsDep
from shiftwatch.detectors import alerts, configs, references
from shiftwatch.detectors.schemas import (
    AlertOut,
    CheckOut,
    DetectorConfigIn,
    DetectorConfigOut,
    DetectorConfigPatch,
    DriftRunOut,
    ReferenceOut,
    ReferenceRangeIn,
)
from shiftwatch.detectors.tables import DriftRun
from shiftwatch.errors import Invalid, NotFound, TooLarge

router = APIRouter(prefix="/v1", tags=["detectors"])


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(
    db: DbDep,
    settings: SettingsDep,
    _: Reader,
    state: str | None = None,
    severity: str | None = None,
    model: str | None = None,
    version: str | None = None,
    detector: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[AlertOut]:
    """Alerts ranked by estimated harm (accuracy points lost), then by recency."""
    with db.session() as session:
        if version and not model:
            raise Invalid("version", "give the model too")
        if model and version:
            version_ids = [registry.get_version(session, model, version).id]
        elif model:
            version_ids = [v.id for v in registry.list_versions(session, model)]
        else:
            version_ids = None
        rows = alerts.list_alerts(
            session, state=state, severity=severity, model_version_ids=version_ids, detector=detector, limit=limit
        )
        return [alerts.to_out(session, settings.public_url, a) for a in rows]


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def get_alert(
    alert_id: int,
    db: DbDep,
    settings: SettingsDep,
    _: Reader,
) -> AlertOut:
    with db.session() as session:
        return alerts.to_out(session, settings.public_url, alerts.get(session, alert_id))


@router.get("/alerts/{alert_id}/report", response_class=FileResponse)
def alert_report(
    alert_id: int,
    db: DbDep,
    settings: SettingsDep,
    _: Reader,
) -> FileResponse:
    """The Evidently drift report of the alert's latest run (HTML)."""
    with db.session() as session:
        path = alerts.report_file(session, settings.data_dir, alert_id)
    return FileResponse(path, media_type="text/html")


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge_alert(
    alert_id: int,
    db: DbDep,
    settings: SettingsDep,
    principal: Operator,
) -> AlertOut:
    with db.session() as session:
        alert = alerts.acknowledge(session, alert_id, principal.name, utcnow())
        return alerts.to_out(session, settings.public_url, alert)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut)
def resolve_alert(
    alert_id: int,
    db: DbDep,
    settings: SettingsDep,
    principal: Operator,
) -> AlertOut:
    with db.session() as session:
        alert = alerts.resolve(session, alerts.Outbox.of(settings), alert_id, principal.name, utcnow())
        return alerts.to_out(session, settings.public_url, alert)


@router.post("/detector-configs", response_model=DetectorConfigOut, status_code=201)
def create_config(body: DetectorConfigIn, db: DbDep, _: Operator) -> DetectorConfigOut:
    fields = body.model_dump(exclude={"model", "version"})
    with db.session() as session:
        version_id = registry.get_version(session, body.model, body.version).id
        return DetectorConfigOut.model_validate(configs.create(session, version_id, **fields))


@router.get("/detector-configs", response_model=list[DetectorConfigOut])
def list_configs(
    db: DbDep,
    _: Reader,
    model: str | None = None,
    version: str | None = None,
) -> list[DetectorConfigOut]:
    with db.session() as session:
        version_id = registry.get_version(session, model, version).id if model and version else None
        return [DetectorConfigOut.model_validate(c) for c in configs.list_configs(session, version_id)]


@router.patch("/detector-configs/{config_id}", response_model=DetectorConfigOut)
def update_config(
    config_id: int,
    body: DetectorConfigPatch,
    db: DbDep,
    _: Operator,
) -> DetectorConfigOut:
    with db.session() as session:
        return DetectorConfigOut.model_validate(configs.update(session, config_id, body.model_dump(exclude_unset=True)))


@router.get("/detector-configs/{config_id}/runs", response_model=list[DriftRunOut])
def list_runs(
    config_id: int,
    db: DbDep,
    _: Reader,
    limit: int = Query(50, ge=1, le=1000),
) -> list[DriftRunOut]:
    from sqlalchemy import select

    with db.session() as session:
        configs.get(session, config_id)
        stmt = select(DriftRun).where(DriftRun.config_id == config_id).order_by(DriftRun.tick.desc()).limit(limit)
        return [DriftRunOut.model_validate(r) for r in session.scalars(stmt)]


@router.put("/models/{model}/versions/{version}/reference", response_model=ReferenceOut)
def pin_reference_range(
    model: str,
    version: str,
    body: ReferenceRangeIn,
    db: DbDep,
    _: Operator,
) -> ReferenceOut:
    """Pin the production predictions of [start, end) as this version's reference."""
    with db.session() as session:
        version_id = registry.get_version(session, model, version).id
        row = references.pin_time_range(session, version_id, body.start, body.end)
        return ReferenceOut(**references.to_out_fields(row))


@router.put("/models/{model}/versions/{version}/reference/upload", response_model=ReferenceOut)
async def pin_reference_upload(
    model: str,
    version: str,
    db: DbDep,
    settings: SettingsDep,
    _: Operator,
    probabilities: UploadFile = File(..., description=".npy (n, k) class probabilities"),
    embeddings: UploadFile | None = File(None, description=".npy (n, d) embeddings"),
    labels: UploadFile | None = File(None, description=".npy (n,) true labels, for accuracy estimators"),
) -> ReferenceOut:
    """Pin uploaded arrays as this version's reference."""
    arrays: dict[str, np.ndarray | None] = {}
    for field, upload in (("probabilities", probabilities), ("embeddings", embeddings), ("labels", labels)):
        if upload is None:
            arrays[field] = None
            continue
        data = await upload.read(settings.max_request_bytes + 1)
        if len(data) > settings.max_request_bytes:
            raise TooLarge(f"{field} is over {settings.max_request_bytes} bytes")
        arrays[field] = references.parse_npy(field, data)

    def pin() -> ReferenceOut:
        with db.session() as session:
            version_id = registry.get_version(session, model, version).id
            row = references.pin_upload(session, version_id, **arrays)
            return ReferenceOut(**references.to_out_fields(row))

    return await run_in_threadpool(pin)  # the database work blocks; keep it off the event loop


@router.get("/models/{model}/versions/{version}/reference", response_model=ReferenceOut)
def get_reference(model: str, version: str, db: DbDep, _: Reader) -> ReferenceOut:
    with db.session() as session:
        row = references.get_row(session, registry.get_version(session, model, version).id)
        if row is None:
            raise NotFound(f"{model}:{version} has no reference window")
        return ReferenceOut(**references.to_out_fields(row))


@router.post("/models/{model}/versions/{version}/check", response_model=CheckOut)
def check_now(
    model: str,
    version: str,
    db: DbDep,
    settings: SettingsDep,
    _: Operator,
) -> CheckOut:
    """Run this version's enabled detectors now instead of at the next tick; a config with no new data only says so."""
    from shiftwatch.detectors.check import check

    return check(db, settings, model, version)
