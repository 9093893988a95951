"""Console sessions: a server-side session after logging in with an API token, and CSRF protection on every form.

A person logs in to the console by pasting their API token once. That creates a row in
``console_sessions`` and a cookie carrying only a random session id (signed by itsdangerous
with the secret key, ``shiftwatch.secret_key``, so a forged one costs no database lookup);
the table keeps the id's sha256, so neither a copy of the database nor the key can mint a
session. Every request looks the session up: logging out or revoking the token ends it on
every replica, a cookie captured earlier included. The token's name is the person recorded
by approve/reject.

CSRF: each form carries ``csrf_token``, a value signed over a hash of the session id (the page
never shows the id itself) with its own salt and age limit; :func:`csrf_protect` refuses a
POST whose token is missing, forged, stale or from another session, and one whose ``Origin``
(or, without one, ``Referer``) is another site; the login form gets the same origin check.
With ``auth_required`` off (the loopback demo) the session id is ``"local"``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select, update

from shiftwatch.auth import LOCAL_ADMIN, Principal, scope_guard
from shiftwatch.auth_tables import ApiToken, ConsoleSession
from shiftwatch.db import Database, utcnow
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
# A flash message is shown on the page a form post redirects to, right away: a link to one older than this
# (a bookmark, the history) shows nothing.
FLASH_MAX_AGE_S = 300
LOCAL_SESSION_ID = "local"
# 32 random bytes, as for API tokens: a session id cannot be guessed.
SESSION_ID_BYTES = 32


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key(settings), salt=salt)


def served_over_https(request: Request, public_url: str, trusted_proxies: Collection[str]) -> bool:
    """Whether the browser reached us over https: the public URL says so, the request came in on TLS,
    or a trusted reverse proxy (``SHIFTWATCH_TRUSTED_PROXIES``) says it terminated TLS."""
    if public_url.startswith("https://") or request.url.scheme == "https":
        return True
    client = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return client in trusted_proxies and forwarded == "https"


def login(db: Database, settings: Settings, token: str, response: Response, *, secure: bool | None = None) -> Principal:
    """Check ``token``, store a new session and set its cookie on ``response``; raises Unauthorized for a bad token."""
    principal = resolve_token(db, token.strip())
    if principal is None:
        raise Unauthorized("unknown or revoked token")
    sid = secrets.token_urlsafe(SESSION_ID_BYTES)
    now = utcnow()
    with db.session() as session:
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.token_sha256 == hash_token(token.strip())))
        session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))  # keeps the table small
        session.add(ConsoleSession(session_sha256=hash_token(sid), token_id=token_id, created_at=now,
                                   expires_at=now + timedelta(seconds=SESSION_MAX_AGE_S)))
    response.set_cookie(
        COOKIE_NAME,
        _serializer(settings, "session").dumps(sid),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,  # no script may read it
        samesite="lax",  # not sent on cross-site POSTs: a second line behind the CSRF token
        secure=settings.public_url.startswith("https://") if secure is None else secure,
        path="/",
    )
    return principal


def logout(request: Request, response: Response) -> None:
    """End the session on the server (a copied cookie stops working too) and clear the cookie."""
    sid = _session(request)
    if sid is not None:
        db: Database = request.app.state.db
        with db.session() as session:
            session.execute(update(ConsoleSession).where(ConsoleSession.session_sha256 == hash_token(sid),
                                                         ConsoleSession.revoked_at.is_(None)).values(revoked_at=utcnow()))
    response.delete_cookie(COOKIE_NAME, path="/")


def _session(request: Request) -> str | None:
    """The session id the cookie carries, when its signature and age check out (not yet looked up)."""
    raw = request.cookies.get(COOKIE_NAME)
    if not raw:
        return None
    try:
        sid = _serializer(request.app.state.settings, "session").loads(raw, max_age=SESSION_MAX_AGE_S)
    except BadSignature:  # includes SignatureExpired
        return None
    return sid if isinstance(sid, str) else None


def has_session(request: Request) -> bool:
    """Whether there is a session to act on: auth off (the local admin), or a cookie whose signature checks out."""
    return not request.app.state.settings.auth_required or _session(request) is not None


def session_id(request: Request) -> str:
    """What CSRF tokens are bound to: a hash of the cookie's session id, or ``local`` with auth off."""
    if not request.app.state.settings.auth_required:
        return LOCAL_SESSION_ID
    sid = _session(request)
    if sid is None:
        raise Unauthorized("log in first")
    return hashlib.sha256(f"csrf:{sid}".encode()).hexdigest()


def console_principal(request: Request) -> Principal:
    """The person behind the session cookie: a live, unexpired session of a token that is not revoked."""
    settings: Settings = request.app.state.settings
    if not settings.auth_required:
        return LOCAL_ADMIN
    sid = _session(request)
    if sid is None:
        raise Unauthorized("log in first")
    db: Database = request.app.state.db
    presented = hash_token(sid)
    with db.session() as session:
        found = session.execute(
            select(ConsoleSession, ApiToken).join(ApiToken, ApiToken.id == ConsoleSession.token_id)
            .where(ConsoleSession.session_sha256 == presented)
        ).first()
        if found is None or not hmac.compare_digest(found[0].session_sha256, presented):
            raise Unauthorized("no such session; log in again")
        console_session, token = found
        if console_session.revoked_at is not None or console_session.expires_at <= utcnow():
            raise Unauthorized("this session ended (logged out or expired); log in again")
        if token.revoked_at is not None:
            raise Unauthorized("the token behind this session was revoked; log in again")
        return Principal(name=token.name, scopes=frozenset(token.scopes))


def require_console(scope: str):
    """Dependency factory for console pages: a logged-in person whose token has ``scope``."""
    return scope_guard(scope, console_principal, "this page")


def csrf_token(request: Request) -> str:
    """The value a template puts in ``<input type="hidden" name="csrf_token">``."""
    return _serializer(request.app.state.settings, "csrf").dumps(session_id(request))


def _bound_session(request: Request) -> str | None:
    try:
        return session_id(request)
    except Unauthorized:
        return None


def signed_flash(request: Request, text: str) -> str:
    """The ``?flash=`` value of a redirect after a form post: the text signed and bound to this session."""
    return _serializer(request.app.state.settings, "flash").dumps([_bound_session(request), text])


def read_flash(request: Request, value: str | None) -> str | None:
    """The text of a ``?flash=`` value this server signed for this session, recently; anything else shows nothing.

    A link with an arbitrary ``?flash=`` cannot put words on a console page (issue 27.7), nor can a flash
    signed for another session be replayed into this one."""
    if not value:
        return None
    try:
        loaded = _serializer(request.app.state.settings, "flash").loads(value, max_age=FLASH_MAX_AGE_S)
    except BadSignature:
        return None
    if not (isinstance(loaded, list) and len(loaded) == 2 and isinstance(loaded[1], str)):
        return None
    bound_to, text = loaded
    current = _bound_session(request)
    if current is None or not isinstance(bound_to, str) or not hmac.compare_digest(bound_to.encode(), current.encode()):
        return None
    return text


def _same_origin(request: Request, public_url: str) -> bool:
    # Every browser in use sends Origin on a form POST; Referer covers the few that do not.
    # Neither: not a browser (curl, tests); the CSRF token or the token being logged in with still has to match.
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    allowed = {f"{request.url.scheme}://{request.url.netloc}", public_url.rstrip("/")}
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" in allowed


def check_same_origin(request: Request) -> None:
    """Refuse a form posted from another site (login CSRF: being logged in as the attacker)."""
    if not _same_origin(request, request.app.state.settings.public_url):
        raise Forbidden("cross-site form submission refused")


async def csrf_protect(request: Request) -> None:
    """Dependency on every console POST: the form (or ``X-CSRF-Token``) must carry this session's token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    settings: Settings = request.app.state.settings
    check_same_origin(request)
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
