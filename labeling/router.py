"""HTTP routes of labeling: Label Studio's webhook, signed image links, and queue operations. Thin."""

from __future__ import annotations

import hmac
from dataclasses import asdict
from datetime import timedelta

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse

from shiftwatch.auth import Principal, current_principal, require
from shiftwatch.collector.inputs import InputStore
from shiftwatch.db import Database, utcnow
from shiftwatch.dependencies import get_db, get_settings
from shiftwatch.errors import Forbidden, Unauthorized, Unavailable
from shiftwatch.labeling import policy, queue, sync
from shiftwatch.labeling.input_links import ROUTE as INPUTS_ROUTE
from shiftwatch.labeling.input_links import link_is_valid
from shiftwatch.labeling.schemas import PushOut, QueueStatusOut, SelectionOut, SyncOut, WebhookIn
from shiftwatch.labeling.studio import WEBHOOK_SECRET_HEADER, webhook_secret
from shiftwatch.settings import Settings

router = APIRouter(prefix="/v1", tags=["labeling"])


@router.post("/labeling/webhook", response_model=SyncOut)
def webhook(
    body: WebhookIn,
    request: Request,
    db: Database = Depends(get_db),
    settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("label")),
) -> SyncOut:
    """Label Studio's annotation and task events; the shared secret header must match."""
    given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), webhook_secret(settings).encode()):
        raise Unauthorized(f"{WEBHOOK_SECRET_HEADER} is missing or wrong")
    return SyncOut(**asdict(sync.apply_webhook(db, body.model_dump(exclude_none=True))))


def signed_link_or_read(
    request: Request,
    name: str,
    expires: int | None = None,
    signature: str | None = None,
    settings: Settings = Depends(get_settings),
) -> str:
    """An annotator's browser cannot send our bearer token: a valid signed link stands in for the ``read`` scope."""
    if expires is None and signature is None:
        principal = current_principal(request)
        if "read" not in principal.scopes:
            raise Forbidden("this needs the 'read' scope")
        return principal.name
    if expires is None or signature is None or not link_is_valid(settings, name, expires, signature):
        raise Forbidden("this image link is invalid or has expired")
    return "signed-link"


signed_link_or_read.required_scope = "read"  # type: ignore[attr-defined]  # read by the route-table test


@router.get(INPUTS_ROUTE.removeprefix("/v1") + "/{name}", response_class=FileResponse)
def signed_input(
    name: str, settings: Settings = Depends(get_settings), _: str = Depends(signed_link_or_read)
) -> FileResponse:
    """A stored input by signed link (what Label Studio shows annotators), or with a ``read`` token."""
    store = InputStore(settings.data_dir)
    ref = f"inputs/{name}"
    return FileResponse(store.path(ref), media_type=store.media_type(ref))


@router.get("/labeling/status", response_model=QueueStatusOut)
def status(
    model: str, db: Database = Depends(get_db), settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("read")),
) -> QueueStatusOut:
    with db.session() as session:
        return QueueStatusOut(**asdict(queue.queue_status(session, model, policy.Budget.of(settings, model).daily)))


@router.post("/labeling/select", response_model=SelectionOut)
def select(
    model: str, hours: float = Query(24.0, gt=0, le=24 * 366), batch_size: int | None = Query(None, ge=1),
    db: Database = Depends(get_db), settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("operate")),
) -> SelectionOut:
    """Run the selection policy over the last ``hours`` of production predictions and queue one batch."""
    with db.session() as session:
        result = policy.select_for_labeling(
            session, model, policy.Budget.of(settings, model, batch_size), start=utcnow() - timedelta(hours=hours)
        )
    return SelectionOut(**asdict(result))


@router.post("/labeling/push", response_model=PushOut)
def push(
    model: str, db: Database = Depends(get_db), settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("operate")),
) -> PushOut:
    result = sync.push(db, settings, model, force=True)
    if result.error:
        raise Unavailable(f"Label Studio: {result.error}; {result.pending} tasks stay pending", retry_after_s=30)
    return PushOut(**asdict(result))


@router.post("/labeling/pull", response_model=SyncOut)
def pull(
    model: str, db: Database = Depends(get_db), settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("operate")),
) -> SyncOut:
    return SyncOut(**asdict(sync.pull(db, settings, model)))


def on_startup(app: FastAPI) -> None:
    """Run the labeling job (select, push, pull) once per interval across replicas when the schedulers are on."""
    from shiftwatch.labeling.job import labeling_job
    from shiftwatch.scheduler import start_job

    settings: Settings = app.state.settings
    if settings.scheduler_enabled:
        start_job(app.state.db, settings, labeling_job(settings))


def on_shutdown(app: FastAPI) -> None:
    from shiftwatch.labeling.job import JOB_NAME
    from shiftwatch.scheduler import stop_job

    if app.state.settings.scheduler_enabled:
        stop_job(JOB_NAME)
