"""How ``shiftwatch serve`` runs uvicorn: bounded connections, header size and header read time.

uvicorn closes idle keep-alive connections but gives a request's headers no deadline, and its
default httptools parser accepts headers of any size (issue 16.14: 50 half-sent requests were
still open after 60 s, a 50 MiB header was accepted). Here the h11 parser caps what a request's
headers may buffer, and a timer closes a connection whose headers have not all arrived in time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from shiftwatch.settings import Settings


class HeaderDeadlineH11(H11Protocol):
    """h11 with a deadline for each request's headers, from connect (or the previous response) on."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's H11Protocol narrows it too
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:  # this request's headers are in
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        # Armed first: the base class goes on to a pipelined request at once, and disarms it via handle_events.
        self._arm_header_timer()  # the next request on this connection gets the same deadline
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol_class(header_timeout_s: float) -> type[HeaderDeadlineH11]:
    """A ``HeaderDeadlineH11`` with this deadline (uvicorn instantiates the class it is given)."""
    return type("BoundedH11", (HeaderDeadlineH11,), {"header_timeout_s": header_timeout_s})


def server_config(app: Any, settings: Settings, host: str | None = None, port: int | None = None) -> uvicorn.Config:
    """The uvicorn configuration ``shiftwatch serve`` uses; every limit is a setting (docs/security.md)."""
    return uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        http=protocol_class(settings.header_timeout_s),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.limit_concurrency,
        timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]  # hinted int; uvicorn uses it as a float delay
        backlog=settings.backlog,
        # uvicorn's own default believes X-Forwarded-For/-Proto from any loopback client (FORWARDED_ALLOW_IPS
        # or 127.0.0.1): a local process could make the console cookie Secure or spoof the client address.
        # Only SHIFTWATCH_TRUSTED_PROXIES are believed, none by default (issue 27.7).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
        log_level="info",
    )
