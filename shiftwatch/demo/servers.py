"""The demo's two loopback servers: shiftwatch itself (uvicorn in a thread) and a webhook receiver that shows alerts."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
from fastapi import FastAPI

from shiftwatch.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiServer:
    """The shiftwatch app served by a real uvicorn on a loopback port, in a daemon thread."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="shiftwatch-demo-api", daemon=True)

    def start(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the demo's API server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook call the receiver got."""

    path: str
    body: dict[str, Any]
    signature_valid: bool | None  # None when the call carried no signature


class WebhookReceiver:
    """A stand-in for Slack or PagerDuty: records every POST on loopback and checks its HMAC signature."""

    def __init__(self, secret: str) -> None:
        self.deliveries: list[Delivery] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                timestamp, signature = self.headers.get(TIMESTAMP_HEADER), self.headers.get(SIGNATURE_HEADER)
                valid = None if signature is None else verify(secret, raw, timestamp, signature)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"raw": raw.decode(errors="replace")}
                with receiver._arrived:
                    receiver.deliveries.append(Delivery(self.path, body, valid))
                    receiver._arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # the demo narrates deliveries itself
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, name="demo-webhook-receiver", daemon=True)

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def wait_for(self, count: int, timeout_s: float) -> list[Delivery]:
        """Block until ``count`` deliveries arrived (or the timeout passed); return what arrived."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.deliveries) >= count, timeout=timeout_s)
            return list(self.deliveries)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
