"""FastAPI dependencies every domain router uses: the database, the settings, and the caller with a scope.

Declared once as ``Annotated`` aliases (as the FastAPI full-stack template does), so a handler
says ``db: DbDep, who: Operator`` and the scope it needs reads off its signature; the handler
still opens its own transaction (``with db.session()``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shiftwatch.auth import Principal, require
from shiftwatch.db import Database
from shiftwatch.settings import Settings


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_read_db(request: Request) -> Database:
    """Where a page's reads go: the read replica, unless the page follows the caller's own write.

    A console form post redirects with a ``flash`` message; the page it lands on must show that
    write, which a lagging replica may not have yet, so it reads the primary.
    """
    db: Database = request.app.state.db
    return db if "flash" in request.query_params else db.reader()


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


DbDep = Annotated[Database, Depends(get_db)]
# Reads that may lag (the read replica when configured): pages and views, never a write's own read-back.
ReadDbDep = Annotated[Database, Depends(get_read_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# The caller, holding one of shiftwatch.scopes.SCOPES (401 without a token, 403 without the scope).
Ingester = Annotated[Principal, Depends(require("ingest"))]
Reader = Annotated[Principal, Depends(require("read"))]
Labeler = Annotated[Principal, Depends(require("label"))]
Operator = Annotated[Principal, Depends(require("operate"))]
Approver = Annotated[Principal, Depends(require("approve"))]
