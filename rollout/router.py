"""HTTP routes of rollout: predict through the gateway, start/inspect rollouts, approve or reject (a person)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from shiftwatch.collector.bodies import BodyLimits, ByteBudget, Reservation, inflated_limit, read_body
from shiftwatch.collector.schemas import VersionOut
from shiftwatch.db import utcnow
from shiftwatch.dependencies import Approver, DbDep, Ingester, Operator, Reader, SettingsDep
from shiftwatch.detectors.alerts import Outbox
from shiftwatch.rollout import controller, status
from shiftwatch.rollout.bootstrap import bootstrap_production
from shiftwatch.rollout.gateway import Answer, Gateway
from shiftwatch.rollout.report import framed_as_comparison, write_report
from shiftwatch.rollout.retry import retry_rollout
from shiftwatch.rollout.routing import CLIENT_KEY_HEADER, REQUEST_ID_HEADER, STREAM_ID_HEADER
from shiftwatch.rollout.schemas import Bootstrap, Decision, PredictOut, RetryRollout, RolloutOut, StartRollout
from shiftwatch.settings import Settings

router = APIRouter(prefix="/v1", tags=["rollout"])


async def answer_request(gateway: Gateway, name: str, request: Request, settings: Settings, budget: ByteBudget) -> Answer:
    """Read a predict request's body within the limits and answer it (this app's route and the Ray Serve router)."""
    content_type = request.headers.get("content-type", "")
    limits = BodyLimits.of(settings)
    limit, limit_name = inflated_limit(content_type.split(";", 1)[0].strip().lower(), limits)
    with gateway.arriving(name), Reservation(budget) as reservation:
        body = await read_body(request, limits, limit=limit, limit_name=limit_name, reservation=reservation)
        return await gateway.predict(
            name,
            body,
            content_type,
            request_id=request.headers.get(REQUEST_ID_HEADER),
            routing_key=request.headers.get(CLIENT_KEY_HEADER),
            stream_id=request.headers.get(STREAM_ID_HEADER),
        )


def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


# Predicting logs a prediction, like ingest does: it needs the "ingest" scope (a serving client's token).
@router.post("/models/{name}/predict", response_model=PredictOut)
async def predict(
    name: str,
    request: Request,
    settings: SettingsDep,
    _: Ingester,
    gateway: Gateway = Depends(get_gateway),
) -> JSONResponse:
    answer = await answer_request(gateway, name, request, settings, request.app.state.parse_budget)
    return JSONResponse(answer.body())


@router.get("/gateway/stats")
def gateway_stats(
    model: str,
    _: Reader,
    gateway: Gateway = Depends(get_gateway),
) -> dict[str, object]:
    """ORT call sizes per loaded version (how much dynamic batching is happening), and the canary's client keys."""
    census = gateway.key_census(model)
    return {
        "canary_keys": None if census is None else asdict(census),
        "batch_sizes": gateway.batch_sizes(model),
        "shadow_dropped": gateway.shadow_dropped,
        "log_written": gateway.writer.written,
        "log_failed": gateway.writer.failed,
        "log_spilled": gateway.writer.spilled,
        "inputs_refused": gateway.writer.inputs_refused,
    }


@router.post("/rollouts", response_model=RolloutOut, status_code=201)
def start_rollout(
    body: StartRollout,
    db: DbDep,
    settings: SettingsDep,
    who: Operator,
) -> RolloutOut:
    with db.session() as session:
        rollout = controller.start_rollout(session, settings.data_dir, body.model, body.version, body.plan, actor=who.name)
        return status.describe(session, rollout)


@router.get("/rollouts", response_model=list[RolloutOut])
def list_rollouts(
    db: DbDep,
    _: Reader,
    model: str | None = None,
    state: str | None = None,
) -> list[RolloutOut]:
    with db.session() as session:
        return status.list_rollouts(session, model, state)


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut)
def get_rollout(rollout_id: int, db: DbDep, _: Reader) -> RolloutOut:
    with db.session() as session:
        return status.describe_id(session, rollout_id)


@router.get("/rollouts/{rollout_id}/report", response_class=HTMLResponse)
def rollout_report(
    rollout_id: int,
    db: DbDep,
    settings: SettingsDep,
    _: Reader,
) -> HTMLResponse:
    """Evidently report of candidate vs production outputs, for the approver (headed as a comparison, not an alarm)."""
    with db.session() as session:
        path = write_report(session, settings.data_dir, controller.get_rollout(session, rollout_id), utcnow())
    return HTMLResponse(framed_as_comparison(path.read_text(encoding="utf-8")))


@router.post("/rollouts/{rollout_id}/approve", response_model=RolloutOut)
def approve(
    rollout_id: int, body: Decision, db: DbDep, settings: SettingsDep, who: Approver
) -> RolloutOut:
    """Promote the canary; its predecessor's detectors and a reference pass to it, the predecessor's alerts resolve."""
    with db.session() as session:
        rollout = controller.approve(session, rollout_id, actor=who.name, force=body.force, reason=body.reason,
                                     outbox=Outbox.of(settings))
        return status.describe(session, rollout)


@router.post("/rollouts/{rollout_id}/reject", response_model=RolloutOut)
def reject(
    rollout_id: int, body: Decision, db: DbDep, who: Approver
) -> RolloutOut:
    with db.session() as session:
        rollout = controller.reject(session, rollout_id, actor=who.name, reason=body.reason)
        return status.describe(session, rollout)


@router.post("/rollouts/{rollout_id}/retry", response_model=RolloutOut, status_code=201)
def retry(
    rollout_id: int, body: RetryRollout, db: DbDep, settings: SettingsDep, who: Operator
) -> RolloutOut:
    """A new rollout of a rolled-back or rejected rollout's candidate, from shadow (operate, like starting one)."""
    with db.session() as session:
        rollout = retry_rollout(session, settings.data_dir, rollout_id, actor=who.name, plan_changes=body.plan,
                                reason=body.reason)
        return status.describe(session, rollout)


@router.post("/models/{name}/versions/{version}/bootstrap", response_model=VersionOut)
def bootstrap(
    name: str, version: str, body: Bootstrap, db: DbDep,
    who: Approver,
) -> VersionOut:  # fmt: skip
    """Make a candidate its model's first production version (409 once the model has had one); audited."""
    with db.session() as session:
        row = bootstrap_production(session, name, version, actor=who.name, reason=body.reason)
        return VersionOut.model_validate(row)


def open_gateway(app: FastAPI) -> None:
    """At the app's start: the serving gateway the predict routes use (it loads models and writes their log)."""
    app.state.gateway = Gateway(app.state.db, app.state.settings)


def close_gateway(app: FastAPI) -> None:
    gateway = getattr(app.state, "gateway", None)
    if gateway is not None:
        gateway.close()
