"""shiftwatch-client: the SDK a serving process uses to log predictions to a shiftwatch server.

Numpy and the standard library only, so it fits in a serving image (Triton, TorchServe, Ray Serve,
FastAPI) next to the model; the server (``pip install shiftwatch``) depends on it and re-exports it as
``shiftwatch.collector.client``. ``Client`` is imported on first use, so ``import shiftwatch_client``
costs nothing until a client is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shiftwatch_client.version import __version__

if TYPE_CHECKING:
    from shiftwatch_client.client import Client
    from shiftwatch_client.sdk_calls import IncompatibleServer
    from shiftwatch_client.transport import ApiError

# Public name -> the module that defines it, imported on first use.
_LAZY = {"Client": "client", "ApiError": "transport", "IncompatibleServer": "sdk_calls"}

__all__ = ["ApiError", "Client", "IncompatibleServer", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"shiftwatch_client.{_LAZY[name]}"), name)
    raise AttributeError(name)
