"""The links this server gives people (CLI output, alerts, webhooks, the demo): one function builds them all.

They start at ``settings.public_url``: SHIFTWATCH_PUBLIC_URL when set, else loopback on SHIFTWATCH_PORT
(``Settings`` fills that in), so no link points at port 8000 while the server listens elsewhere.
"""

from __future__ import annotations


def public_link(public_url: str, path: str) -> str:
    """``path`` (``/console/...``, ``/v1/...``) under the public base URL, whatever slashes either carries."""
    return f"{public_url.rstrip('/')}/{path.lstrip('/')}"


def console_rollout_url(public_url: str, rollout_id: int) -> str:
    """The console's rollout page, where a person reads the comparison and approves."""
    return public_link(public_url, f"/console/rollouts/{rollout_id}")
