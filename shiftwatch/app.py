"""The FastAPI app factory: one app, every domain's router, one error handler."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DataError, OperationalError

from shiftwatch import __version__
from shiftwatch.auth import require
from shiftwatch.cross_site import CrossSiteGuard
from shiftwatch.db import Database
from shiftwatch.errors import Invalid, ShiftwatchError, Unavailable
from shiftwatch.secret_key import secret_key
from shiftwatch.security_headers import SecurityHeaders
from shiftwatch.settings import Settings

# Each domain's router module, lowest layer first. A module may also define
# ``on_startup(app)`` / ``on_shutdown(app)`` for what it runs in the background.
ROUTER_MODULES = (
    "shiftwatch.collector.router",
    "shiftwatch.detectors.router",
    "shiftwatch.labeling.router",
    "shiftwatch.retrain.router",
    "shiftwatch.rollout.router",
    "shiftwatch.console.router",
)


def _domain_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in ROUTER_MODULES]


def error_body(exc: ShiftwatchError) -> dict:
    body: dict = {"detail": exc.message, "error": type(exc).__name__}
    if isinstance(exc, Invalid):
        body["field"] = exc.field
    return body


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """Build the API. The schema must already be migrated (``shiftwatch serve`` does that first)."""
    from shiftwatch.collector.bodies import ByteBudget
    from shiftwatch.collector.router import IngestGate
    from shiftwatch.maintenance import RETENTION_JOB
    from shiftwatch.scheduler import start_job, stop_job
    from shiftwatch.tokens import TokenResolver

    modules = _domain_modules()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for module in modules:
            if hasattr(module, "on_startup"):
                module.on_startup(app)
        if settings.scheduler_enabled:
            start_job(app.state.db, settings, RETENTION_JOB)
        try:
            yield
        finally:
            if settings.scheduler_enabled:
                stop_job(RETENTION_JOB.name)
            for module in reversed(modules):
                if hasattr(module, "on_shutdown"):
                    module.on_shutdown(app)

    app = FastAPI(title="shiftwatch", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    secret_key(settings)  # read (or generate) it now: a bad key file fails the build, not a request
    app.state.db = db or Database.connect(settings.database_url)
    app.state.ingest_gate = IngestGate(settings.max_inflight_batches)
    app.state.parse_budget = ByteBudget(settings.max_parse_bytes)  # shared by ingest and the gateway
    # Consulted by shiftwatch.auth.current_principal only when settings.auth_required is on.
    app.state.resolve_token = TokenResolver(app.state.db)

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
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for module in modules:
        app.include_router(module.router)
    # Outermost first: a foreign Host or a cross-site simple POST is refused before any route reads
    # a body, and every answer, refusals included, carries the security headers.
    app.add_middleware(CrossSiteGuard, settings=settings)
    app.add_middleware(SecurityHeaders)
    return app
