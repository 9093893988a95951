"""Collector: logs every prediction (embedding, confidence, probabilities, version, route).

Owns the tables ``models``, ``model_versions`` and ``predictions``; exposes the ingest
router, the non-blocking client SDK (``shiftwatch_client.client.Client``) and the
window queries the detectors read. Importing this package is light: the SDK needs
only numpy and the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shiftwatch_client.client import Client

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from shiftwatch_client.client import Client

        return Client
    raise AttributeError(name)
