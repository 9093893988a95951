"""A real uvicorn on a loopback port, in a thread, for tests that need a socket rather than the ASGI app."""

from __future__ import annotations

import socket
import threading
import time

from shiftwatch.settings import Settings

TEST_CLIENT_HOST = "testserver"  # the Host header FastAPI's TestClient sends


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn serving ``app`` on a loopback port, in a thread; with ``settings``, as ``shiftwatch serve`` does."""

    def __init__(self, app, port: int | None = None, settings: Settings | None = None) -> None:
        import uvicorn

        from shiftwatch.serving import server_config

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if settings is None:
            config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        else:
            config = server_config(app, settings, "127.0.0.1", self.port)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
