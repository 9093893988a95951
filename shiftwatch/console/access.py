"""Who may see and press what in the console: the same scopes as the API, one dependency per route."""

from __future__ import annotations

from fastapi import Depends, Request

from shiftwatch.auth import Principal, require


def page_access(scope: str):  # type: ignore[no-untyped-def]
    """Dependency for a console route: the caller needs ``scope``, exactly as on the API."""
    return require(scope)


def csrf_field(request: Request) -> str:
    """Hidden form field carrying the CSRF token; empty until session cookies are in this build."""
    return ""


def check_csrf(request: Request, principal: Principal = Depends(page_access("read"))) -> Principal:
    """Form posts must carry the session's CSRF token (a no-op while the console has no session cookies)."""
    return principal
