"""Who may see and press what in the console: the API's scopes, carried by a session cookie, plus CSRF on forms.

A person logs in once with an API token (``/console/login``); every page then needs the
same scope its API twin needs (``require_console``), and every form post carries the
session's CSRF token (``csrf_protect``). With ``auth_required`` off (the loopback demo)
everyone is the local admin, as on the API.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.exceptions import HTTPException

from shiftwatch.errors import Unauthorized
from shiftwatch.sessions import CSRF_FIELD, console_principal, csrf_protect, csrf_token, require_console

__all__ = ["csrf_field", "csrf_protect", "login_first", "page_access"]


def page_access(scope: str):
    """Dependency for a console route: a logged-in person whose token has ``scope``."""
    return require_console(scope)


def login_first(request: Request) -> None:
    """Send a browser without a session to the login page (303) instead of answering 401 JSON."""
    try:
        console_principal(request)
    except Unauthorized:
        login = request.url_for("console_login").include_query_params(next=request.url.path)
        raise HTTPException(status_code=303, headers={"Location": str(login)}) from None


def csrf_field(request: Request) -> str:
    """The hidden form field every console form carries."""
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{csrf_token(request)}">'


LoginFirst = Depends(login_first)
