"""Shared by the labeling tests: predictions with chosen probabilities/embeddings, and a replay of recorded Label Studio responses."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from shiftwatch.db import Database
from shiftwatch.settings import Settings
from shiftwatch_client.records import PredictionRecord
from tests.support.collector import store_predictions

DATA = Path(__file__).parents[1] / "data"


def free_port_closed() -> int:
    """A loopback port nothing listens on (bound, then released): connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fake_ref(i: int | str) -> str:
    return f"inputs/{hashlib.sha256(str(i).encode()).hexdigest()}.png"


def eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    """Whether ``check()`` comes true within ``timeout_s`` (polled every 0.2 s): for webhooks, which arrive later."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def low_contrast_png(size: int = 32) -> bytes:
    """A drifted-looking input: a bright bar on a dark field, all within grey levels 41..65 (hard to read as is)."""
    pixels = np.full((size, size), 41, dtype=np.uint8)
    pixels[4:28, 14:18] = 65
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def probs_with_margin(predicted: int, margin: float, num_classes: int = 10) -> np.ndarray:
    """A probability vector whose top-1 is ``predicted`` and beats the runner-up by ``margin``."""
    p = np.full(num_classes, 0.0, dtype=np.float32)
    runner_up = (predicted + 1) % num_classes
    p[predicted], p[runner_up] = (1 + margin) / 2, (1 - margin) / 2
    return p


def log(
    db: Database,
    settings: Settings,
    probabilities: np.ndarray,
    embeddings: np.ndarray,
    *,
    ts: datetime | None = None,
    ids: list[uuid.UUID] | None = None,
    input_refs: list[str] | None = None,
    model: str = "digits",
    version: str = "v1",
) -> list[uuid.UUID]:
    """Log one production prediction per row, a millisecond apart; returns their ids in order."""
    ts = ts or datetime.now(UTC) - timedelta(minutes=5)
    ids = ids or [uuid.uuid4() for _ in range(len(probabilities))]
    records = [
        PredictionRecord(
            model=model,
            version=version,
            predicted_class=int(np.argmax(p)),
            confidence=float(np.max(p)),
            embedding=embeddings[i].astype(np.float32),
            probabilities=p.astype(np.float32),
            input_ref=(input_refs[i] if input_refs else fake_ref(ids[i])),
            id=ids[i],
            ts=ts + timedelta(milliseconds=i),
        )
        for i, p in enumerate(probabilities)
    ]
    store_predictions(db, settings, records)
    return ids


class ReplayServer:
    """Answers Label Studio API calls from a recording (method + path -> responses in order); anything else is a 500.

    The recording was made by running shiftwatch's push and pull against a real Label Studio
    1.23.2 through a recording proxy (tests/data/labelstudio_api.json), so these contract
    tests check the exact calls the SDK makes and the exact shapes it gets back.
    """

    def __init__(self, exchanges: list[dict]) -> None:
        self.queue: dict[tuple[str, str], list[dict]] = {}
        for exchange in exchanges:
            self.queue.setdefault((exchange["method"], exchange["path"]), []).append(exchange)
        self.calls: list[tuple[str, str, object]] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                replay.calls.append((self.command, path, body))
                answers = replay.queue.get((self.command, path))
                if not answers:
                    self.send_response(500)
                    self.end_headers()
                    return
                exchange = answers.pop(0) if len(answers) > 1 else answers[0]
                payload = json.dumps(exchange["response"]).encode()
                self.send_response(exchange["status"])
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
