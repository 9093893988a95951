"""Refuses an SDK of another API version by name, before its batch is parsed.

``shiftwatch-client`` sends ``Shiftwatch-Client-Version`` on every request; a client of another API
generation (``shiftwatch_client.version.mismatch``) gets a 400 naming both versions and the pip pin
that fixes it. Requests without the header (curl, browsers, other HTTP clients) pass untouched, and so
does ``/health``: it is where a client reads the server's version (``Client.check_server()``).
"""

from __future__ import annotations

from shiftwatch import __version__
from shiftwatch.cross_site import ASGIApp, Scope, refuse
from shiftwatch_client.version import VERSION_HEADER, mismatch

_HEADER = VERSION_HEADER.lower().encode("latin-1")
UNCHECKED_PATHS = ("/health",)


class ClientVersionGuard:
    """ASGI middleware: a 400 for an SDK whose version cannot talk to this server."""

    def __init__(self, app: ASGIApp, server_version: str = __version__) -> None:
        self.app = app
        self.server_version = server_version

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] not in UNCHECKED_PATHS:
            sent = next((value for name, value in scope["headers"] if name.lower() == _HEADER), None)
            why = mismatch(sent.decode("latin-1"), self.server_version) if sent is not None else None
            if why is not None:
                await refuse(send, 400, VERSION_HEADER, why)
                return
        await self.app(scope, receive, send)
