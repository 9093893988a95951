"""HTTP routes of labeling: Label Studio's webhook, signed image links, and queue operations. Thin."""

from __future__ import annotations

import hmac
from dataclasses import asdict
from datetime import timedelta

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse

from shiftwatch.auth import Principal, require
from shiftwatch.collector.inputs import InputStore
from shiftwatch.db import Database, utcnow
from shiftwatch.dependencies import get_db, get_settings
from shiftwatch.errors import Forbidden, Unauthorized, Unavailable
from shiftwatch.labeling import queue, sync
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
):
    """Label Studio's annotation and task events; the shared secret header must match."""
    given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), webhook_secret(settings).encode()):
        raise Unauthorized(f"{WEBHOOK_SECRET_HEADER} is missing or wrong")
    return SyncOut(**asdict(sync.apply_webhook(db, body.model_dump(exclude_none=True))))


@router.get(INPUTS_ROUTE.removeprefix("/v1") + "/{name}", response_class=FileResponse)
def signed_input(
    name: str, expires: int = Query(...), signature: str = Query(...), settings: Settings = Depends(get_settings)
) -> FileResponse:
    """A stored input by signed link (what Label Studio shows annotators); the signature is the credential."""
    if not link_is_valid(settings, name, expires, signature):
        raise Forbidden("this image link is invalid or has expired")
    store = InputStore(settings.data_dir)
    ref = f"inputs/{name}"
    return FileResponse(store.path(ref), media_type=store.media_type(ref))


@router.get("/labeling/status", response_model=QueueStatusOut)
def status(
    model: str, db: Database = Depends(get_db), settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("read")),
):
    with db.session() as session:
        return QueueStatusOut(**asdict(queue.queue_status(session, settings, model)))


@router.post("/labeling/select", response_model=SelectionOut)
def select(
    model: str, hours: float = Query(24.0, gt=0, le=24 * 366), batch_size: int | None = Query(None, ge=1),
    db: Database = Depends(get_db), settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("operate")),
):
    """Run the selection policy over the last ``hours`` of production predictions and queue one batch."""
    with db.session() as session:
        result = queue.select_for_labeling(
            session, settings, model, start=utcnow() - timedelta(hours=hours), batch_size=batch_size
        )
    return SelectionOut(**asdict(result))


@router.post("/labeling/push", response_model=PushOut)
def push(
    model: str, db: Database = Depends(get_db), settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("operate")),
):
    result = sync.push(db, settings, model, force=True)
    if result.error:
        raise Unavailable(f"Label Studio: {result.error}; {result.pending} tasks stay pending", retry_after_s=30)
    return PushOut(**asdict(result))


@router.post("/labeling/pull", response_model=SyncOut)
def pull(
    model: str, db: Database = Depends(get_db), settings: Settings = Depends(get_settings),
    _: Principal = Depends(require("operate")),
):
    return SyncOut(**asdict(sync.pull(db, settings, model)))


def on_startup(app: FastAPI) -> None:
    """Run the labeling job (select, push, pull) on its interval when the schedulers are on."""
    settings: Settings = app.state.settings
    if not settings.scheduler_enabled:
        return
    from apscheduler.schedulers.background import BackgroundScheduler

    from shiftwatch.labeling.job import LabelingJob

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        LabelingJob(app.state.db, settings), "interval", seconds=settings.labeling_sync_interval_s,
        id="labeling", max_instances=1, coalesce=True,
    )
    scheduler.start()
    app.state.labeling_scheduler = scheduler


def on_shutdown(app: FastAPI) -> None:
    scheduler = getattr(app.state, "labeling_scheduler", None)
    if scheduler is not None:
        scheduler.shutdown(wait=False)
