"""CORS on the signed image links, for Label Studio's pages only: its editor loads images with ``crossOrigin``.

Label Studio's labeling view fetches each task image as an anonymous cross-origin request, so
the browser shows it only when our answer names the page's origin in
``Access-Control-Allow-Origin``. We name it only for Label Studio's origins (the origin of
``SHIFTWATCH_LABEL_STUDIO_URL`` and ``SHIFTWATCH_LABEL_STUDIO_ORIGINS``), only on the signed
input route, and never with credentials: the link's signature and expiry stay the credential.
Any other origin gets no CORS header, so its scripts cannot read our images.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from shiftwatch.cross_site import ASGIApp, Scope
from shiftwatch.labeling.input_links import ROUTE
from shiftwatch.settings import Settings

PREFIX = ROUTE + "/"
METHODS = b"GET, HEAD"
# A browser may reuse an approved preflight for this long (seconds).
PREFLIGHT_MAX_AGE = b"600"
ORIGINS_FIELD = "SHIFTWATCH_LABEL_STUDIO_ORIGINS"
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def origin_of(url: str) -> str:
    """``https://LS.example.com:8443/projects`` -> ``https://ls.example.com:8443``; '' when it is not a URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = "" if parts.port in (None, default_port) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


def label_studio_origins(settings: Settings) -> frozenset[str]:
    """The origins whose pages may read the signed image links: Label Studio's URL and the configured extras."""
    found = {origin_of(url) for url in (settings.label_studio_url or "", *settings.label_studio_origins)}
    return frozenset(found - {""})


class InputLinkCors:
    """ASGI middleware: CORS headers for Label Studio's origins on the signed input route; preflights answered here."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.origins = label_studio_origins(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin", "").lower()
        allowed = origin in self.origins
        if scope["method"] == "OPTIONS":
            await self._preflight(send, origin, allowed, headers.get("access-control-request-method", ""))
            return
        cors = [(b"access-control-allow-origin", origin.encode("latin-1"))] if allowed else []

        async def send_with_cors(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = [*cors, (b"vary", b"Origin")]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, origin: str, allowed: bool, method: str) -> None:
        if allowed and method.upper() in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 204, "headers": [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", METHODS),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE),
                (b"vary", b"Origin"),
            ]})
            await send({"type": "http.response.body", "body": b""})
            return
        if allowed:
            field, why = "access-control-request-method", f"{method[:20]!r}: image links answer GET and HEAD only"
        else:
            field, why = "origin", f"{origin[:200]!r} is not Label Studio's (SHIFTWATCH_LABEL_STUDIO_URL or {ORIGINS_FIELD})"
        body = json.dumps({"detail": f"{field}: {why}", "error": "Forbidden", "field": field}).encode()
        await send({"type": "http.response.start", "status": 403, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"vary", b"Origin"),
        ]})
        await send({"type": "http.response.body", "body": body})
