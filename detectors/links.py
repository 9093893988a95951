"""Links people follow from an alert: the console page (what a browser can open), on the public URL."""

from __future__ import annotations

from shiftwatch.links import public_link
from shiftwatch.settings import Settings


def console_alert_url(public_url: str, alert_id: int) -> str:
    """The console's alert page: HTML, with a login form when tokens are required (the API URL answers 401)."""
    return public_link(public_url, f"/console/alerts/{alert_id}")


def api_alert_url(public_url: str, alert_id: int) -> str:
    return public_link(public_url, f"/v1/alerts/{alert_id}")


def with_served_port(settings: Settings, port: int) -> tuple[Settings, str | None]:
    """``serve``'s links when ``SHIFTWATCH_PUBLIC_URL`` is unset: loopback on the port it really serves, and a note saying so.

    Links on the default ``127.0.0.1:8000`` pointed nowhere whenever the server ran on another port.
    """
    if "public_url" in settings.model_fields_set:
        return settings, None
    served = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    return served, (
        f"note: SHIFTWATCH_PUBLIC_URL is unset, so links in alerts and webhooks point at {served.public_url}, "
        "which only this machine can open; set it to the address people reach this server at"
    )
