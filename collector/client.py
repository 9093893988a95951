"""The SDK under its server-side name: ``shiftwatch_client.client``, installed by ``shiftwatch-client``.

One copy of the code lives in the client distribution (client/shiftwatch_client); the server depends
on it, so ``from shiftwatch.collector.client import Client`` keeps working where the server is installed.
"""

from shiftwatch_client.client import Client, ClientStats
from shiftwatch_client.transport import ApiError

__all__ = ["ApiError", "Client", "ClientStats"]
