"""Headers every response carries so a browser will not frame, sniff or leak it (issue 16.8).

A route may set its own value first (the console's report route allows its own page to
frame it); these are only the defaults.
"""

from __future__ import annotations

from shiftwatch.cross_site import ASGIApp, Scope

DEFAULT_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),  # a stored upload is never run as script or HTML
    (b"x-frame-options", b"DENY"),  # no clickjacking of the approve and resolve buttons
    (b"content-security-policy", b"frame-ancestors 'none'"),  # the same, for browsers that read CSP only
    # Same-origin requests keep the Referer (the console's CSRF check reads it); other sites get none.
    (b"referrer-policy", b"same-origin"),
)
# What a route that only its own pages may frame sets (the alert page embeds its Evidently report).
SAME_ORIGIN_FRAMING = {"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "frame-ancestors 'self'"}
# Console responses (pages, redirects, reports) show what a session may see: no browser or shared cache keeps
# them, so the back button after logout or the next person on a shared machine finds nothing (issue 27.7).
CONSOLE_PREFIX = "/console"
CONSOLE_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))


class SecurityHeaders:
    """ASGI middleware: add each default header the response does not set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path: str = scope.get("path", "")
        console = path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")
        defaults = DEFAULT_HEADERS + CONSOLE_HEADERS if console else DEFAULT_HEADERS

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                if console:  # a route's own caching header (a FileResponse's) never lets a console page be kept
                    message = {**message, "headers": [(n, v) for n, v in message.get("headers", [])
                                                       if n.lower() not in (b"cache-control", b"pragma")]}
                    present -= {b"cache-control", b"pragma"}
                extra = [(name, value) for name, value in defaults if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
