"""HTTP routes of rollout: predict through the gateway, start/inspect rollouts, approve or reject (a person)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from shiftwatch.auth import Principal, require
from shiftwatch.collector.bodies import Reservation, inflated_limit, read_body
from shiftwatch.db import Database, utcnow
from shiftwatch.scheduler import ScheduledJob, start_job, stop_job
from shiftwatch.dependencies import get_db, get_settings
from shiftwatch.collector.schemas import VersionOut
from shiftwatch.rollout import controller, status
from shiftwatch.rollout.bootstrap import bootstrap_production
from shiftwatch.rollout.gateway import Gateway
from shiftwatch.rollout.report import framed_as_comparison, write_report
from shiftwatch.rollout.routing import CLIENT_KEY_HEADER, REQUEST_ID_HEADER, STREAM_ID_HEADER
from shiftwatch.rollout.schemas import Bootstrap, Decision, PredictOut, RolloutOut, StartRollout
from shiftwatch.settings import Settings

router = APIRouter(prefix="/v1", tags=["rollout"])
JOB_NAME = "rollout.controller"


def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


# Predicting logs a prediction, like ingest does: it needs the "ingest" scope (a serving client's token).
@router.post("/models/{name}/predict", response_model=PredictOut)
async def predict(
    name: str,
    request: Request,
    gateway: Gateway = Depends(get_gateway),
    settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("ingest")),
) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    limit, limit_name = inflated_limit(content_type.split(";", 1)[0].strip().lower(), settings)
    with gateway.arriving(name), Reservation(request.app.state.parse_budget) as reservation:
        body = await read_body(request, settings, limit=limit, limit_name=limit_name, reservation=reservation)
        answer = await gateway.predict(
            name,
            body,
            content_type,
            request_id=request.headers.get(REQUEST_ID_HEADER),
            routing_key=request.headers.get(CLIENT_KEY_HEADER),
            stream_id=request.headers.get(STREAM_ID_HEADER),
        )
    # A plain JSONResponse: the hot path skips response-model re-validation (PredictOut documents the shape).
    return JSONResponse(
        {
            "model": answer.model,
            "version": answer.version,
            "route": answer.route,
            "request_id": answer.request_id,
            "class": answer.predicted_class,
            "label": answer.label,
            "confidence": answer.confidence,
            "probabilities": answer.probabilities,
        }
    )


@router.get("/gateway/stats")
def gateway_stats(model: str, gateway: Gateway = Depends(get_gateway), _: Principal = Depends(require("read"))) -> dict[str, object]:
    """ORT call sizes per loaded version: how much dynamic batching is happening."""
    return {
        "batch_sizes": gateway.batch_sizes(model),
        "shadow_dropped": gateway.shadow_dropped,
        "log_written": gateway.writer.written,
        "log_failed": gateway.writer.failed,
        "inputs_refused": gateway.writer.inputs_refused,
    }


@router.post("/rollouts", response_model=RolloutOut, status_code=201)
def start_rollout(
    body: StartRollout,
    db: Database = Depends(get_db),
    settings: Settings = Depends(get_settings),
    who: Principal = Depends(require("operate")),
) -> RolloutOut:
    with db.session() as session:
        rollout = controller.start_rollout(session, settings, body.model, body.version, body.plan, actor=who.name)
        return status.describe(session, rollout)


@router.get("/rollouts", response_model=list[RolloutOut])
def list_rollouts(
    model: str | None = None,
    state: str | None = None,
    db: Database = Depends(get_db),
    _: Principal = Depends(require("read")),
) -> list[RolloutOut]:
    with db.session() as session:
        return status.list_rollouts(session, model, state)


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut)
def get_rollout(rollout_id: int, db: Database = Depends(get_db), _: Principal = Depends(require("read"))) -> RolloutOut:
    with db.session() as session:
        return status.describe_id(session, rollout_id)


@router.get("/rollouts/{rollout_id}/report", response_class=HTMLResponse)
def rollout_report(
    rollout_id: int,
    db: Database = Depends(get_db),
    settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("read")),
) -> HTMLResponse:
    """Evidently report of candidate vs production outputs, for the approver (headed as a comparison, not an alarm)."""
    with db.session() as session:
        path = write_report(session, settings, controller.get_rollout(session, rollout_id), utcnow())
    return HTMLResponse(framed_as_comparison(path.read_text(encoding="utf-8")))


@router.post("/rollouts/{rollout_id}/approve", response_model=RolloutOut)
def approve(
    rollout_id: int, body: Decision, db: Database = Depends(get_db), who: Principal = Depends(require("approve"))
) -> RolloutOut:
    with db.session() as session:
        rollout = controller.approve(session, rollout_id, actor=who.name, force=body.force, reason=body.reason)
        return status.describe(session, rollout)


@router.post("/rollouts/{rollout_id}/reject", response_model=RolloutOut)
def reject(
    rollout_id: int, body: Decision, db: Database = Depends(get_db), who: Principal = Depends(require("approve"))
) -> RolloutOut:
    with db.session() as session:
        rollout = controller.reject(session, rollout_id, actor=who.name, reason=body.reason)
        return status.describe(session, rollout)


@router.post("/models/{name}/versions/{version}/bootstrap", response_model=VersionOut)
def bootstrap(
    name: str, version: str, body: Bootstrap, db: Database = Depends(get_db),
    who: Principal = Depends(require("approve")),
) -> VersionOut:  # fmt: skip
    """Make a candidate its model's first production version (409 once the model has had one); audited."""
    with db.session() as session:
        row = bootstrap_production(session, name, version, actor=who.name, reason=body.reason)
        return VersionOut.model_validate(row)


def controller_tick(db: Database, settings: Settings, tick: datetime) -> None:
    """The scheduled job (shiftwatch.scheduler claims the tick, so one replica runs it)."""
    controller.tick(db, settings, utcnow())


def controller_job(settings: Settings) -> ScheduledJob:
    return ScheduledJob(JOB_NAME, settings.rollout_tick_seconds, controller_tick)


def on_startup(app: FastAPI) -> None:
    app.state.gateway = Gateway(app.state.db, app.state.settings)
    if app.state.settings.scheduler_enabled:
        start_job(app.state.db, app.state.settings, controller_job(app.state.settings))


def on_shutdown(app: FastAPI) -> None:
    if app.state.settings.scheduler_enabled:
        stop_job(JOB_NAME)
    gateway = getattr(app.state, "gateway", None)
    if gateway is not None:
        gateway.close()
