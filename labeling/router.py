"""HTTP routes of labeling: Label Studio's webhook, signed image links, and queue operations. Thin."""

from __future__ import annotations

import hmac
from dataclasses import asdict
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response

from shiftwatch.auth import current_principal
from shiftwatch.collector.inputs import InputStore
from shiftwatch.db import utcnow
from shiftwatch.dependencies import DbDep, Labeler, Operator, Reader, SettingsDep
from shiftwatch.errors import Forbidden, Unauthorized, Unavailable
from shiftwatch.labeling import policy, queue, sync
from shiftwatch.labeling.alert_audit import queue_alert_audit
from shiftwatch.labeling.input_links import ROUTE as INPUTS_ROUTE
from shiftwatch.labeling.input_links import InputLinks
from shiftwatch.labeling.label_import import LabelRow, import_labels
from shiftwatch.labeling.retire import retire_labels
from shiftwatch.labeling.schemas import (
    AlertAuditIn,
    AlertAuditOut,
    ImportOut,
    LabelsIn,
    PushOut,
    QueuedTaskOut,
    QueueStatusOut,
    RetireIn,
    RetireOut,
    SelectionOut,
    SyncOut,
    WebhookIn,
)
from shiftwatch.labeling.stretch import contrast_stretched_png
from shiftwatch.labeling.studio import WEBHOOK_SECRET_HEADER, Studio, webhook_secret
from shiftwatch.labeling.task_list import list_tasks

router = APIRouter(prefix="/v1", tags=["labeling"])


@router.post("/labeling/webhook", response_model=SyncOut)
def webhook(
    body: WebhookIn,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    _: Labeler,
) -> SyncOut:
    """Label Studio's annotation and task events; the shared secret header must match."""
    given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), webhook_secret(settings).encode()):
        raise Unauthorized(f"{WEBHOOK_SECRET_HEADER} is missing or wrong")
    return SyncOut(**asdict(sync.apply_webhook(db, body.model_dump(exclude_none=True))))


def signed_link_or_read(
    request: Request,
    name: str,
    settings: SettingsDep,
    expires: int | None = None,
    signature: str | None = None,
) -> str:
    """An annotator's browser cannot send our bearer token: a valid signed link stands in for the ``read`` scope."""
    if expires is None and signature is None:
        principal = current_principal(request)
        if "read" not in principal.scopes:
            raise Forbidden("this needs the 'read' scope")
        return principal.name
    if expires is None or signature is None or not InputLinks.of(settings).is_valid(name, expires, signature):
        raise Forbidden("this image link is invalid or has expired")
    return "signed-link"


signed_link_or_read.required_scope = "read"  # type: ignore[attr-defined]  # read by the route-table test


@router.get(INPUTS_ROUTE.removeprefix("/v1") + "/{name}", response_class=FileResponse)
def signed_input(
    name: str,
    settings: SettingsDep,
    _: str = Depends(signed_link_or_read),
    view: Literal["original", "stretched"] = Query(
        "original", description="'stretched': a PNG with the grey levels stretched to the full range, for people"
    ),
) -> Response:
    """A stored input by signed link (what Label Studio shows annotators), or with a ``read`` token."""
    store = InputStore(settings.data_dir)
    ref = f"inputs/{name}"
    if view == "stretched":
        png = contrast_stretched_png(store.get(ref), settings.gateway_max_image_pixels)
        return Response(png, media_type="image/png")
    return FileResponse(store.path(ref), media_type=store.media_type(ref))


@router.get("/labeling/status", response_model=QueueStatusOut)
def status(
    model: str, db: DbDep, settings: SettingsDep,
    _: Reader,
) -> QueueStatusOut:
    with db.session() as session:
        return QueueStatusOut(**asdict(queue.queue_status(session, model, policy.Budget.of(settings, model).daily)))


@router.get("/labeling/tasks", response_model=list[QueuedTaskOut])
def tasks(
    model: str, db: DbDep, settings: SettingsDep,
    _: Reader,
    state: str | None = Query("pending", description="pending, sent, labeled or skipped; 'all' for every state"),
    limit: int = Query(100, ge=1, le=10_000),
) -> list[QueuedTaskOut]:
    """The model's queued samples, highest priority first: what a person labels without Label Studio, then
    sends back with ``POST /v1/labels`` or ``shiftwatch labeling import``."""
    with db.session() as session:
        found = list_tasks(session, InputLinks.of(settings), model, None if state == "all" else state, limit)
    return [QueuedTaskOut(**asdict(task)) for task in found]


@router.post("/labeling/select", response_model=SelectionOut)
def select(
    model: str,
    db: DbDep,
    settings: SettingsDep,
    _: Operator,
    hours: float = Query(24.0, gt=0, le=24 * 366),
    batch_size: int | None = Query(None, ge=1),
) -> SelectionOut:
    """Run the selection policy over the last ``hours`` of predictions (audit slice of every route, informative picks) and queue one batch."""
    with db.session() as session:
        result = policy.select_for_labeling(
            session, model, policy.Budget.of(settings, model, batch_size), start=utcnow() - timedelta(hours=hours)
        )
    return SelectionOut(**asdict(result))


@router.post("/labeling/audit", response_model=AlertAuditOut)
def audit_alert(body: AlertAuditIn, db: DbDep, settings: SettingsDep, _: Operator) -> AlertAuditOut:
    """Queue the labels an alert asks for: a uniform draw of its window, as the random slice its accuracy is measured on."""
    with db.session() as session:
        result = queue_alert_audit(session, body.alert_id, body.labels, lambda model: policy.Budget.of(settings, model), utcnow(),
                                   design=body.design)
    return AlertAuditOut(**asdict(result))


@router.post("/labeling/push", response_model=PushOut)
def push(
    model: str, db: DbDep, settings: SettingsDep,
    _: Operator,
) -> PushOut:
    result = sync.push(db, settings, model, force=True)
    if result.error:
        raise Unavailable(f"Label Studio: {result.error}; {result.pending} tasks stay pending", retry_after_s=30)
    return PushOut(**asdict(result))


@router.post("/labeling/pull", response_model=SyncOut)
def pull(
    model: str, db: DbDep, settings: SettingsDep,
    _: Operator,
) -> SyncOut:
    return SyncOut(**asdict(sync.pull(db, Studio.from_settings(settings), model)))


@router.post("/labels", response_model=ImportOut)
def post_labels(body: LabelsIn, db: DbDep, principal: Labeler) -> ImportOut:
    """Labels given outside Label Studio, keyed by prediction id, request id or input_ref: all stored, or 422 listing each bad row."""
    rows = [LabelRow.of(f"labels[{i}]", row.model_dump()) for i, row in enumerate(body.labels)]
    with db.session() as session:
        return ImportOut(**asdict(import_labels(session, body.model, rows, annotator=principal.name)))


@router.post("/labels/retire", response_model=RetireOut)
def retire(body: RetireIn, db: DbDep, _: Operator) -> RetireOut:
    """A label definition changed: labels given before ``before`` (of ``class`` only, if named) are kept for audit
    and left out of retraining and of every labeled accuracy; a new label for a sample un-retires it."""
    with db.session() as session:
        done = retire_labels(session, body.model, body.before, body.label_class, body.reason)
    return RetireOut(**asdict(done))
