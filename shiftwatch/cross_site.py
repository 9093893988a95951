"""What another web site may not make a browser do here: answer under a foreign Host, or POST a simple request.

DNS rebinding points an attacker's name at 127.0.0.1, so the browser calls us as if it were
that site: every request must name this server in ``Host`` (the public URL's host, loopback,
or ``SHIFTWATCH_ALLOWED_HOSTS``). A page on another site can POST only "simple" requests
without asking first (CORS preflight, which this server never approves): no Content-Type,
or text/plain, form-urlencoded or multipart. So every POST under ``/v1`` must carry another
type (JSON, or the SDK's npz and the gateway's images); body-less POSTs send
``Content-Type: application/json``. Console forms are under ``/console`` and carry CSRF tokens.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from shiftwatch.exposure import is_loopback
from shiftwatch.settings import Settings

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

HOSTS_FIELD = "SHIFTWATCH_ALLOWED_HOSTS"
# The content types a browser sends cross-site without a preflight (Fetch standard, "CORS-safelisted").
SIMPLE_CONTENT_TYPES = frozenset({"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
# Load balancers probe liveness by the machine's address; /health says only "ok" and the version.
HOST_EXEMPT_PATHS = frozenset({"/health"})


def host_name(host_header: str) -> str:
    """``Example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``; '' when it cannot be parsed."""
    try:
        return (urlsplit(f"//{host_header.strip()}").hostname or "").lower()
    except ValueError:
        return ""


def allowed_host_names(public_url: str, allowed_hosts: Iterable[str]) -> frozenset[str]:
    """Names other than loopback this server answers to: the public URL's host and the configured extras."""
    public = host_name(urlsplit(public_url).netloc)
    return frozenset({public, *(name.lower() for name in allowed_hosts)} - {""})


def host_problem(host_header: str, allowed: frozenset[str]) -> str | None:
    """Why a request with this ``Host`` is not for this server, or None when it is."""
    name = host_name(host_header)
    if name and (name in allowed or is_loopback(name)):
        return None
    shown = host_header[:100] or "(none)"
    return (f"Host {shown!r} is not this server: it answers to its SHIFTWATCH_PUBLIC_URL host, loopback and "
            f"{HOSTS_FIELD}; add the name clients use to {HOSTS_FIELD}")


def content_type_problem(method: str, path: str, content_type: str) -> str | None:
    """Why this request is one another site's page could send unasked (a simple POST to the API), or None."""
    if method != "POST" or not path.startswith("/v1/"):
        return None
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence not in SIMPLE_CONTENT_TYPES:
        return None
    shown = f"{essence!r}" if essence else "missing"
    return (f"{shown}: a POST to the API must send Content-Type application/json (also with an empty body) "
            "or the route's binary type; other sites' pages can send this one")


class CrossSiteGuard:
    """ASGI middleware: 400 for a foreign Host, 415 for a simple-request POST under /v1, before any route runs."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.allowed = allowed_host_names(settings.public_url, settings.allowed_hosts)

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem, field, status = None, "", 400
        if scope["path"] not in HOST_EXEMPT_PATHS:
            problem, field = host_problem(headers.get("host", ""), self.allowed), "host"
        if problem is None:
            problem = content_type_problem(scope["method"], scope["path"], headers.get("content-type", ""))
            field, status = "content-type", 415
        if problem is None:
            await self.app(scope, receive, send)
            return
        await refuse(send, status, field, problem)


async def refuse(send, status: int, field: str, why: str) -> None:
    """Answer a request with one JSON refusal (the API's error shape) before any route runs."""
    body = json.dumps({"detail": f"{field}: {why}", "error": "Invalid", "field": field}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
