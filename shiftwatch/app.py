"""The FastAPI app factory: one app, every domain's router and background jobs, one error handler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DataError, OperationalError

from shiftwatch import __version__, maintenance
from shiftwatch.auth import require
from shiftwatch.client_version import ClientVersionGuard
from shiftwatch.collector import router as collector_routes
from shiftwatch.collector.bodies import ByteBudget
from shiftwatch.collector.broker import broker_publisher
from shiftwatch.console import router as console_routes
from shiftwatch.cross_site import CrossSiteGuard
from shiftwatch.db import Database
from shiftwatch.detectors import router as detector_routes
from shiftwatch.detectors import schedule as detector_jobs
from shiftwatch.errors import Invalid, ShiftwatchError, Unavailable
from shiftwatch.labeling import job as labeling_jobs
from shiftwatch.labeling import router as labeling_routes
from shiftwatch.labeling.media_cors import InputLinkCors
from shiftwatch.metrics import Exposition
from shiftwatch.retrain import router as retrain_routes
from shiftwatch.rollout import job as rollout_jobs
from shiftwatch.rollout import router as rollout_routes
from shiftwatch.scheduler import ScheduledJob, start_job, stop_job
from shiftwatch.secret_key import secret_key
from shiftwatch.security_headers import SecurityHeaders
from shiftwatch.settings import Settings
from shiftwatch.tokens import TokenResolver

# Each domain's routes, lowest layer first.
ROUTERS: tuple[APIRouter, ...] = (
    collector_routes.router,
    detector_routes.router,
    labeling_routes.router,
    retrain_routes.router,
    rollout_routes.router,
    console_routes.router,
)
# Each domain's background jobs, ``jobs(settings)``; the lifespan starts them when ``scheduler_enabled``.
JOBS: tuple[Callable[[Settings], list[ScheduledJob]], ...] = (
    detector_jobs.jobs,
    labeling_jobs.jobs,
    rollout_jobs.jobs,
    maintenance.jobs,
)


def scheduled_jobs(settings: Settings) -> list[ScheduledJob]:
    """Every domain's jobs for this process: none when the schedulers are off (tests, the demo)."""
    return [job for jobs in JOBS for job in jobs(settings)] if settings.scheduler_enabled else []


def error_body(exc: ShiftwatchError) -> dict:
    body: dict = {"detail": exc.message, "error": type(exc).__name__}
    if isinstance(exc, Invalid):
        body["field"] = exc.field
        if exc.details is not None:
            body["details"] = exc.details
    return body


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """Build the API. The schema must already be migrated (``shiftwatch serve`` does that first)."""
    jobs = scheduled_jobs(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rollout_routes.open_gateway(app)
        for job in jobs:
            start_job(app.state.db, settings, job)
        try:
            yield
        finally:
            for job in reversed(jobs):
                stop_job(job.name)
            rollout_routes.close_gateway(app)
            if app.state.broker is not None:
                app.state.broker.close()

    app = FastAPI(title="shiftwatch", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    secret_key(settings)  # read (or generate) it now: a bad key file fails the build, not a request
    app.state.db = db or Database.connect(settings.database_url, settings.read_database_url)
    app.state.ingest_gate = collector_routes.IngestGate(settings.max_inflight_batches)
    app.state.parse_budget = ByteBudget(settings.max_parse_bytes)  # shared by ingest and the gateway
    app.state.broker = broker_publisher(settings)  # None: ingest stores batches itself
    # Consulted by shiftwatch.auth.current_principal only when settings.auth_required is on.
    app.state.resolve_token = TokenResolver(app.state.db)
    exposition = Exposition(app.state.db, app.state.broker)

    @app.exception_handler(ShiftwatchError)
    async def _domain_error(_: Request, exc: ShiftwatchError) -> JSONResponse:
        headers = {}
        if isinstance(exc, Unavailable):
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return JSONResponse(error_body(exc), status_code=exc.status_code, headers=headers)

    @app.exception_handler(OperationalError)
    async def _database_unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        # The database restarting or failing over is an outage, not a bug: 503 tells clients
        # (the SDK included) to retry; the transaction was rolled back, so nothing is half-written.
        return JSONResponse(
            {"detail": "database unavailable; retry later", "error": "Unavailable"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(DataError)
    async def _unstorable_value(_: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL refuses what validation let through (a NUL character in text, an integer past
        # int4): the input is at fault, so 422, never 500. Found by tests/security/test_fuzz.py.
        reason = str(exc.orig).splitlines()[0][:200] if exc.orig is not None else "invalid value"
        return JSONResponse(
            {"detail": f"request: a value cannot be stored ({reason})", "error": "Invalid", "field": "request"},
            status_code=422,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        return JSONResponse(
            {"detail": f"{location}: {error['msg']}", "error": "Invalid", "field": location}, status_code=422
        )

    @app.get("/health", tags=["ops"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    # Prometheus scrapes with a read token (``authorization: {credentials_file: ...}`` in its config).
    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse, dependencies=[Depends(require("read"))])
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(exposition.render(), media_type=CONTENT_TYPE_LATEST)

    for router in ROUTERS:
        app.include_router(router)
    # Outermost first: a foreign Host or a cross-site simple POST is refused before any route reads
    # a body, and every answer, refusals included, carries the security headers; innermost, Label
    # Studio's pages (only) may read the signed image links.
    app.add_middleware(InputLinkCors, settings=settings)
    app.add_middleware(ClientVersionGuard)
    app.add_middleware(CrossSiteGuard, settings=settings)
    app.add_middleware(SecurityHeaders)
    return app
