"""Links people follow from an alert: the console page (what a browser can open), on the public URL."""

from __future__ import annotations

from shiftwatch.links import public_link


def console_alert_url(public_url: str, alert_id: int) -> str:
    """The console's alert page: HTML, with a login form when tokens are required (the API URL answers 401)."""
    return public_link(public_url, f"/console/alerts/{alert_id}")


def api_alert_url(public_url: str, alert_id: int) -> str:
    return public_link(public_url, f"/v1/alerts/{alert_id}")


def served_public_url(given: str | None, port: int) -> tuple[str, str | None]:
    """``serve``'s link base: the ``SHIFTWATCH_PUBLIC_URL`` given, else loopback on the port it really serves and a note saying so.

    Links on the default ``127.0.0.1:8000`` pointed nowhere whenever the server ran on another port.
    """
    if given is not None:
        return given, None
    served = f"http://127.0.0.1:{port}"
    return served, (
        f"note: SHIFTWATCH_PUBLIC_URL is unset, so links in alerts and webhooks point at {served}, "
        "which only this machine can open; set it to the address people reach this server at"
    )
