"""The client's version and the one rule both sides use to tell whether a client and a server can talk.

The client sends its version on every request (``VERSION_HEADER``); the server refuses a client of
another API generation with a 400 naming both versions, and ``Client.check_server()`` applies the
same rule from the client's side. An API generation is the major version, or major.minor before 1.0
(semantic versioning: 0.x minors may break), so a 0.1.3 client talks to a 0.1.0 server, not a 0.2.0 one.
"""

from __future__ import annotations

__version__ = "0.1.0"

VERSION_HEADER = "Shiftwatch-Client-Version"
USER_AGENT = f"shiftwatch-client/{__version__}"


def api_generation(version: str) -> tuple[int, ...]:
    """The part of ``version`` that must match: ``(major,)``, or ``(0, minor)`` before 1.0."""
    parts = version.split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    except ValueError:
        raise ValueError(f"not a version: {version!r} (expected major.minor.patch)") from None
    return (major,) if major > 0 else (0, minor)


def _pin(version: str) -> str:
    """The pip requirement that installs a client of ``version``'s generation."""
    generation = api_generation(version)
    if generation[0] > 0:
        return f"shiftwatch-client>={generation[0]},<{generation[0] + 1}"
    return f"shiftwatch-client>=0.{generation[1]},<0.{generation[1] + 1}"


def mismatch(client_version: str, server_version: str) -> str | None:
    """Why a client of ``client_version`` cannot talk to a server of ``server_version``, or None."""
    try:
        if api_generation(client_version) == api_generation(server_version):
            return None
    except ValueError as exc:
        return f"shiftwatch-client version {client_version!r} is unreadable: {exc}"
    return (f"shiftwatch-client {client_version} cannot talk to the shiftwatch server {server_version} "
            f"(another API version); install the matching client: pip install '{_pin(server_version)}'")  # fmt: skip
