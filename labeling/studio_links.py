"""Where Label Studio reaches shiftwatch: the image links and the webhook both point at ``SHIFTWATCH_PUBLIC_URL``.

A process that pushes tasks (the demo, a one-off ``labeling push``) is not necessarily the
one serving that URL. These helpers let the demo serve where its links point when it can,
and otherwise say plainly what a person must run for images to load and labels to arrive.
"""

from __future__ import annotations

import shlex
import socket
from urllib.parse import urlsplit

from shiftwatch.exposure import is_loopback
from shiftwatch.settings import Settings


def loopback_port(public_url: str) -> int | None:
    """The port of an ``http://`` public URL on a loopback host (what a local run can serve itself); else None."""
    parts = urlsplit(public_url)
    if parts.scheme != "http" or not parts.hostname or not is_loopback(parts.hostname) or parts.path not in ("", "/"):
        return None
    try:
        return parts.port or 80
    except ValueError:
        return None


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def studio_port(settings: Settings) -> int | None:
    """The loopback port Label Studio's links and webhook point at; None without Label Studio or when they
    point elsewhere."""
    return loopback_port(settings.public_url) if settings.label_studio_url else None


def serving_port(settings: Settings) -> int | None:
    """The port to serve on so Label Studio's links and webhook reach this process: ``studio_port`` when it
    is free; None (any port) otherwise."""
    port = studio_port(settings)
    return port if port is not None and port_is_free(port) else None


def serve_env(settings: Settings) -> str:
    """Environment for a later ``shiftwatch serve`` that keeps answering Label Studio: its origin (CORS on
    the image links) and the public URL its links and webhook name. Empty without Label Studio."""
    if not settings.label_studio_url:
        return ""
    return (f"SHIFTWATCH_LABEL_STUDIO_URL={shlex.quote(settings.label_studio_url)} "
            f"SHIFTWATCH_PUBLIC_URL={shlex.quote(settings.public_url)} ")


def links_note(settings: Settings, served_url: str) -> str:
    """One true sentence on where Label Studio's image links and webhook point, and what keeps them working."""
    public = settings.public_url.rstrip("/")
    if served_url.rstrip("/") == public:
        return (f"Label Studio's image links and webhook point at {public}, where this run serves: they work "
                "while it runs, and again once you start the serve line printed at the end (same address).")
    return (f"Label Studio's image links and webhook point at {public} (SHIFTWATCH_PUBLIC_URL), not at this "
            f"run's {served_url.rstrip('/')}: images load and labels arrive only while a shiftwatch serving this "
            "store answers there. Start the serve line printed at the end on that address (free the port "
            "first), or set SHIFTWATCH_PUBLIC_URL to an address you will serve at and run the demo again.")


def serve_port(settings: Settings) -> int:
    """The port a later ``shiftwatch serve`` of this store should use: the public URL's when Label Studio's
    links point at a loopback address, else the configured ``port``."""
    port = studio_port(settings)
    return settings.port if port is None else port
