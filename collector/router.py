"""HTTP routes of the collector: thin, they parse, call the service and map errors."""

from __future__ import annotations

import threading
import time

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import AwareDatetime

from shiftwatch.artifacts import artifact_in_store, verify_onnx_artifact
from shiftwatch.collector import metrics, queries, registry
from shiftwatch.collector.artifact_upload import receive_artifact
from shiftwatch.collector.bodies import BodyLimits, Reservation, inflated_limit, read_body
from shiftwatch.collector.broker import BrokerPublisher
from shiftwatch.collector.ingest import check, ingest
from shiftwatch.collector.input_spec_check import check_input_spec, onnx_input_dims
from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.json_rows import charge_parse, parse_rows
from shiftwatch.collector.row_checks import RowProblem
from shiftwatch.collector.schemas import (
    ArtifactOut,
    IngestOut,
    ModelIn,
    ModelOut,
    PredictionOut,
    PredictionPage,
    RowRefusal,
    VersionIn,
    VersionOut,
    ingest_request_body,
)
from shiftwatch.collector.tables import Prediction
from shiftwatch.db import Database
from shiftwatch.dependencies import DbDep, Ingester, Operator, Reader, SettingsDep
from shiftwatch.errors import Invalid, ShiftwatchError, Unavailable
from shiftwatch.settings import Settings
from shiftwatch_client import wire

router = APIRouter(prefix="/v1", tags=["collector"])


@router.post("/models", response_model=ModelOut, status_code=201)
def create_model(body: ModelIn, db: DbDep, _: Operator) -> ModelOut:
    with db.session() as session:
        return ModelOut.model_validate(registry.register_model(session, body.name, body.class_names, body.description))


@router.get("/models", response_model=list[ModelOut])
def list_models(db: DbDep, _: Reader) -> list[ModelOut]:
    with db.session() as session:
        return [ModelOut.model_validate(m) for m in registry.list_models(session)]


@router.get("/models/{name}", response_model=ModelOut)
def get_model(name: str, db: DbDep, _: Reader) -> ModelOut:
    with db.session() as session:
        return ModelOut.model_validate(registry.get_model(session, name))


@router.post("/models/{name}/versions", response_model=VersionOut, status_code=201)
def create_version(
    name: str,
    body: VersionIn,
    db: DbDep,
    settings: SettingsDep,
    _: Operator,
) -> VersionOut:
    """Register a candidate; its artifact must be under data_dir/artifacts (or uploaded) and a valid ONNX."""
    fields = body.model_dump(exclude={"version"})
    if body.artifact_path is not None:
        fields["artifact_path"] = artifact_in_store(settings.data_dir, body.artifact_path)
        check = verify_onnx_artifact(settings.data_dir / fields["artifact_path"], body.artifact_sha256)
        fields["artifact_sha256"] = check.sha256  # what the gateway verifies before serving it
        dims = onnx_input_dims(settings.data_dir / fields["artifact_path"])
        check_input_spec(body.input_spec, max_pixels=settings.gateway_max_image_pixels, onnx_dims=dims)
    elif body.input_spec:
        check_input_spec(body.input_spec, max_pixels=settings.gateway_max_image_pixels, onnx_dims=None)
    with db.session() as session:
        row = registry.register_version(session, name, body.version, **fields)
        return VersionOut.model_validate(row)


@router.post("/artifacts", response_model=ArtifactOut, status_code=201)
async def upload_artifact(
    request: Request,
    settings: SettingsDep,
    _: Operator,
) -> ArtifactOut:
    """Upload an ONNX file (the raw bytes; ``X-Artifact-Sha256`` optional); register it by the path returned."""
    path, check = await receive_artifact(
        request, request.headers.get("x-artifact-sha256"), data_dir=settings.data_dir,
        limit=settings.artifact_max_bytes, timeout_s=settings.artifact_upload_timeout_s,
    )  # fmt: skip
    return ArtifactOut(artifact_path=path, sha256=check.sha256, size_bytes=check.size_bytes,
                       opset=check.opset, inputs=list(check.inputs), outputs=list(check.outputs))


@router.get("/models/{name}/versions", response_model=list[VersionOut])
def list_versions(name: str, db: DbDep, _: Reader) -> list[VersionOut]:
    with db.session() as session:
        return [VersionOut.model_validate(v) for v in registry.list_versions(session, name)]


class IngestGate:
    """Bounds the batches being stored at once: past the bound the server answers 503 + Retry-After, not a queue."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)

    def __enter__(self) -> None:
        if not self._slots.acquire(blocking=False):
            raise Unavailable("ingest is saturated; retry later", retry_after_s=1.0)

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


async def _parsed_chunks(
    request: Request, content_type: str, limits: BodyLimits, reservation: Reservation, *, partial: bool
) -> tuple[list, list[RowProblem]]:
    """Read (bounded in size, time and shared budget) and parse the body off the event loop."""
    if content_type not in (wire.CONTENT_TYPE, "application/json"):
        raise Invalid("content-type", f"{content_type!r}: send application/json or {wire.CONTENT_TYPE}")
    limit, name = inflated_limit(content_type, limits)
    body = await read_body(request, limits, limit=limit, limit_name=name, reservation=reservation)
    if content_type == wire.CONTENT_TYPE:
        return [(await run_in_threadpool(_npz_batch, body, limits.max_request_bytes), None)], []
    charge_parse(body, reservation)
    return await run_in_threadpool(lambda: parse_rows(body, partial=partial))


def _npz_batch(body: bytes, max_unpacked_bytes: int) -> wire.ColumnBatch:
    try:
        return wire.decode(body, max_unpacked_bytes=max_unpacked_bytes)
    except wire.WireError as exc:
        raise Invalid(exc.field, exc.why) from None


@router.post("/predictions", response_model=IngestOut, response_model_exclude_unset=True,
             openapi_extra={"requestBody": ingest_request_body()},
             responses={202: {"model": IngestOut, "description": "validated and handed to the ingest broker "
                              "(SHIFTWATCH_INGEST_BROKER_URL); `queued` rows are stored by an ingest worker"}})
async def post_predictions(
    request: Request,
    response: Response,
    db: DbDep,
    settings: SettingsDep,
    _: Ingester,
    partial: bool = Query(
        False, description="store the valid rows and refuse each bad one with its reason (200 with refusals), "
        "instead of refusing the whole batch for its first bad row (422)",
    ),
) -> IngestOut:
    """Store a batch of predictions (JSON, or the ``.npz`` columns of ``collector.wire``). Idempotent by id.

    The in-flight slot is taken only once the body is read and parsed: a slow upload holds
    memory from the shared budget, never a slot other clients need to store.
    """
    started = time.perf_counter()
    gate: IngestGate = request.app.state.ingest_gate
    broker: BrokerPublisher | None = request.app.state.broker
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    try:
        with Reservation(request.app.state.parse_budget) as reservation:
            chunks, refused = await _parsed_chunks(
                request, content_type, BodyLimits.of(settings), reservation, partial=partial
            )
            with gate:
                if broker is not None:
                    return await _publish(broker, db, settings, chunks, refused, partial, response)
                result = await run_in_threadpool(
                    lambda: ingest(db, chunks, max_rows=settings.max_batch_rows,
                                   retention_days=settings.retention_days, partial=partial, refused=refused,
                                   embedding_keep_rate=settings.embedding_keep_rate)
                )  # fmt: skip
    except ShiftwatchError as exc:
        metrics.REJECTED.labels(reason=type(exc).__name__).inc()
        raise
    metrics.INGEST_SECONDS.observe(time.perf_counter() - started)
    models = {str(m) for chunk, _ in chunks for m in np.unique(chunk.model)}
    for model in models:
        metrics.INGESTED.labels(model=model).inc(result.stored / max(len(models), 1))
    metrics.DUPLICATES.inc(result.duplicates)
    return _answer(result.received, result.refused, partial, stored=result.stored, duplicates=result.duplicates)


def _answer(received: int, refused: tuple[RowProblem, ...], partial: bool, **counts: int) -> IngestOut:
    if refused:
        metrics.REJECTED.labels(reason="RowRefused").inc(len(refused))
    fields: dict = {"received": received, **counts}
    if partial:  # a whole-batch client gets the answer it always had
        fields["refused"] = len(refused)
        fields["refusals"] = [RowRefusal(index=p.index, field=p.field, reason=p.reason, status=p.kind.status_code)
                              for p in refused]  # fmt: skip
    return IngestOut(**fields)


async def _publish(
    broker: BrokerPublisher, db: Database, settings: Settings, chunks: list, refused: list[RowProblem],
    partial: bool, response: Response,
) -> IngestOut:
    """The broker path: validate, publish what passed, answer 202 once JetStream acked it (an ingest worker stores it)."""
    checked = await run_in_threadpool(
        lambda: check(db, chunks, max_rows=settings.max_batch_rows, retention_days=settings.retention_days,
                      partial=partial, refused=refused)
    )  # fmt: skip
    queued = await broker.publish([chunk for chunk, _, _ in checked.kept]) if checked.kept else 0
    metrics.QUEUED.inc(queued)
    response.status_code = 202
    return _answer(checked.received, checked.refused, partial, stored=0, duplicates=0, queued=queued)


@router.get("/predictions", response_model=PredictionPage)
def get_predictions(
    model: str,
    version: str,
    db: DbDep,
    _: Reader,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    route: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
    include_vectors: bool = False,
) -> PredictionPage:
    """Page through one version's predictions in time order; pass ``next_cursor`` back for the next page."""
    with db.session() as session:
        row = registry.get_version(session, model, version)
        rows, next_cursor = queries.page(
            session, row.id, start=start, end=end, route=route, limit=limit, cursor=cursor
        )
        return PredictionPage(items=[_out(p, model, version, include_vectors) for p in rows], next_cursor=next_cursor)


def _out(p: Prediction, model: str, version: str, include_vectors: bool) -> PredictionOut:
    def vector(values: np.ndarray | None) -> list[float] | None:
        if values is None or not include_vectors:
            return None
        return values.tolist()

    return PredictionOut(
        id=p.id,
        ts=p.ts,
        model=model,
        version=version,
        route=p.route,
        request_id=p.request_id,
        stream_id=p.stream_id,
        predicted_class=p.predicted_class,
        confidence=p.confidence,
        probabilities=vector(p.probabilities),
        embedding=vector(p.embedding),
        input_ref=p.input_ref,
        latency_ms=p.latency_ms,
    )




@router.get("/inputs/{name}", response_class=FileResponse)
def get_input(
    name: str, settings: SettingsDep, _: Reader
) -> FileResponse:
    """The stored input image behind an ``input_ref`` (``inputs/<sha256>.png``)."""
    store = InputStore(settings.data_dir)
    ref = f"inputs/{name}"
    return FileResponse(store.path(ref), media_type=store.media_type(ref))
