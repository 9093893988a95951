"""FastAPI dependencies every domain router uses: the database, the settings, and the caller."""

from __future__ import annotations

from fastapi import Request

from shiftwatch.db import Database
from shiftwatch.settings import Settings


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> Settings:
    return request.app.state.settings
