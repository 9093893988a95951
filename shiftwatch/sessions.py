"""Console sessions: a signed cookie after logging in with an API token, and CSRF protection on every form.

A person logs in to the console by pasting their API token once; the cookie then carries
the token's hash (signed by itsdangerous with the secret key, ``shiftwatch.secret_key``, so
it cannot be forged or edited) and a random session id. Every request re-checks the hash against
``api_tokens``, so revoking the token ends the session on every replica. The token's name
is the person recorded by approve/reject.

CSRF: each form carries ``csrf_token``, a value signed over the session id with its own
salt and age limit; :func:`csrf_protect` refuses a POST whose token is missing, forged,
stale or from another session, and one whose ``Origin`` is another site. With
``auth_required`` off (the loopback demo) the session id is ``"local"``.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from shiftwatch.auth import LOCAL_ADMIN, Principal, scope_guard
from shiftwatch.auth_models import ApiToken
from shiftwatch.db import Database
from shiftwatch.errors import Forbidden, Unauthorized
from shiftwatch.secret_key import secret_key
from shiftwatch.settings import Settings
from shiftwatch.tokens import hash_token, resolve_token

COOKIE_NAME = "shiftwatch_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# A working day: a person logs in once in the morning; a stolen cookie is useful for hours, not weeks.
SESSION_MAX_AGE_S = 12 * 3600
# A form left open longer than the session cannot be submitted either.
CSRF_MAX_AGE_S = SESSION_MAX_AGE_S
LOCAL_SESSION_ID = "local"


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key(settings), salt=salt)


def login(db: Database, settings: Settings, token: str, response: Response) -> Principal:
    """Check ``token`` and set the session cookie on ``response``; raises Unauthorized for a bad token."""
    principal = resolve_token(db, token.strip())
    if principal is None:
        raise Unauthorized("unknown or revoked token")
    value = _serializer(settings, "session").dumps({"sid": secrets.token_urlsafe(16), "th": hash_token(token.strip())})
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,  # no script may read it
        samesite="lax",  # not sent on cross-site POSTs: a second line behind the CSRF token
        secure=settings.public_url.startswith("https://"),
        path="/",
    )
    return principal


def logout(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/")


def _session(request: Request) -> dict | None:
    settings: Settings = request.app.state.settings
    raw = request.cookies.get(COOKIE_NAME)
    if not raw:
        return None
    try:
        data = _serializer(settings, "session").loads(raw, max_age=SESSION_MAX_AGE_S)
    except BadSignature:  # includes SignatureExpired
        return None
    return data if isinstance(data, dict) and {"sid", "th"} <= data.keys() else None


def session_id(request: Request) -> str:
    """The id CSRF tokens are bound to: the cookie's, or ``local`` with auth off."""
    if not request.app.state.settings.auth_required:
        return LOCAL_SESSION_ID
    data = _session(request)
    if data is None:
        raise Unauthorized("log in first")
    return str(data["sid"])


def console_principal(request: Request) -> Principal:
    """The person behind the session cookie (re-checked against api_tokens on every request)."""
    settings: Settings = request.app.state.settings
    if not settings.auth_required:
        return LOCAL_ADMIN
    data = _session(request)
    if data is None:
        raise Unauthorized("log in first")
    db: Database = request.app.state.db
    with db.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == str(data["th"])))
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_sha256, str(data["th"])):
            raise Unauthorized("the token behind this session was revoked; log in again")
        return Principal(name=row.name, scopes=frozenset(row.scopes))


def require_console(scope: str):  # type: ignore[no-untyped-def]
    """Dependency factory for console pages: a logged-in person whose token has ``scope``."""
    return scope_guard(scope, console_principal, "this page")


def csrf_token(request: Request) -> str:
    """The value a template puts in ``<input type="hidden" name="csrf_token">``."""
    return _serializer(request.app.state.settings, "csrf").dumps(session_id(request))


def _same_origin(request: Request, settings: Settings) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # non-browser clients and older browsers send none; the token still has to match
    allowed = {f"{request.url.scheme}://{request.url.netloc}", settings.public_url.rstrip("/")}
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" in allowed


async def csrf_protect(request: Request) -> None:
    """Dependency on every console POST: the form (or ``X-CSRF-Token``) must carry this session's token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    settings: Settings = request.app.state.settings
    if not _same_origin(request, settings):
        raise Forbidden("cross-site form submission refused")
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        form = await request.form()  # Starlette caches it: the route reads the same form
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not presented:
        raise Forbidden("missing CSRF token; reload the page")
    try:
        bound_to = _serializer(settings, "csrf").loads(presented, max_age=CSRF_MAX_AGE_S)
    except BadSignature:
        raise Forbidden("invalid or expired CSRF token; reload the page") from None
    if not hmac.compare_digest(str(bound_to).encode(), session_id(request).encode()):
        raise Forbidden("CSRF token belongs to another session; reload the page")
