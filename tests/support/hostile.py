"""Hostile request bodies and a watcher of a server's memory and /health, for the tests and bench/hostile_load.py.

The bodies are what issue 13 probed with: gzip-compressed JSON batches that inflate to tens of
MiB but cost little to send, and PNGs whose header claims a huge image in a few KiB of zlib.
"""

from __future__ import annotations

import gzip
import json
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx


def json_bomb(decompressed_bytes: int, *, model: str = "digits", version: str = "v1", dim: int = 64) -> bytes:
    """A gzip body that inflates to about ``decompressed_bytes`` of valid-looking JSON predictions."""
    row = {
        "id": str(uuid.UUID(int=1)),
        "model": model,
        "version": version,
        "ts": datetime.now(UTC).isoformat(),
        "predicted_class": 1,
        "confidence": 0.5,
        "embedding": [0.123456789012345] * dim,
    }
    text = json.dumps(row)
    rows = max(1, decompressed_bytes // (len(text) + 2))
    return gzip.compress(('{"predictions": [' + ", ".join([text] * rows) + "]}").encode(), compresslevel=6)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, *, rgb: bool = True) -> bytes:
    """A valid PNG of ``width`` x ``height`` black pixels; all-zero rows compress ~1000:1, so it is small to send."""
    channels = 3 if rgb else 1
    row = b"\x00" * (1 + width * channels)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if rgb else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


class Streamed:
    """A body sent chunked (no ``Content-Length``): ``size`` zero bytes, a MiB at a time, never all in memory here."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"\0" * 2**20
        for _ in range(self.size // len(chunk)):
            yield chunk


Body = bytes | Streamed


def values_bomb() -> bytes:
    """Issue 27.1: a gzip body inflating to just under 16 MiB of JSON holding one 8.4 M-value embedding."""
    from tests.support.json_cost import body

    return gzip.compress(body("one_vector", 16 * 2**20 - 4096), compresslevel=6)


def onnx_bomb_bytes(n: int, *, hide_shape: bool) -> bytes:
    """A ``ConstantOfShape([n, n])`` ONNX file of a few hundred bytes (tests/support/onnx_bombs.py)."""
    import tempfile
    from pathlib import Path

    from tests.support.onnx_bombs import constant_bomb

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bomb.onnx"
        constant_bomb(path, n, hide_shape=hide_shape)
        return path.read_bytes()


def hostile_bodies() -> list[tuple[str, Body, dict[str, str]]]:
    """The load of issues 13, 16.12 and 27 as (path, body, headers): 6 + 6 gzip JSON bombs (60 and 15 MiB),
    4 PNGs claiming huge sizes, 2 bodies of 300 MiB streamed to the gateway without a length, 4 JSON
    bodies of 8.4 M values each (27.1), 2 ONNX constant bombs uploaded (8192^2 seen by shape inference,
    65536^2 hidden from it; 27.3) and a version registered with a 6000x6000 input_spec (27.4), in that order."""
    mib = 2**20
    ingest = {"content-type": "application/json", "content-encoding": "gzip"}
    png = {"content-type": "image/png"}
    big_json, capped_json = json_bomb(60 * mib, dim=128), json_bomb(15 * mib, dim=128)
    big_png, huge_png = png_claiming(12000, 12000), png_claiming(20000, 20000, rgb=False)
    octets = {"content-type": "application/octet-stream"}
    huge_spec = json.dumps({"version": "huge", "embedding_dim": 16, "input_spec": {"shape": [1, 6000, 6000]}}).encode()
    return (
        [("/v1/predictions", big_json, ingest)] * 6
        + [("/v1/predictions", capped_json, ingest)] * 6
        + [("/v1/models/digits/predict", big_png, png)] * 3
        + [("/v1/models/digits/predict", huge_png, png)]
        + [("/v1/models/digits/predict", Streamed(300 * mib), png)] * 2
        + [("/v1/predictions", values_bomb(), ingest)] * 4
        + [("/v1/artifacts", onnx_bomb_bytes(8192, hide_shape=False), octets)]
        + [("/v1/artifacts", onnx_bomb_bytes(65536, hide_shape=True), octets)]
        + [("/v1/models/digits/versions", huge_spec, {"content-type": "application/json"})]
    )


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set (VmHWM), from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


@dataclass
class HealthWatch:
    """Polls ``/health`` in a thread; records each answer's latency (a timeout or error counts as ``timeout_s``)."""

    url: str
    timeout_s: float = 10.0
    every_s: float = 0.2
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> HealthWatch:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=self.timeout_s + 5)

    def _poll(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(f"{self.url}/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started if ok else self.timeout_s)
                self.failures += 0 if ok else 1
                self._stop.wait(self.every_s)

    @property
    def worst_s(self) -> float:
        return max(self.latencies, default=0.0)


def send_hostile(url: str, bodies: list[tuple[str, Body, dict[str, str]]], timeout_s: float = 120.0) -> list[int]:
    """POST every (path, body, headers) at once, one thread each; returns each status (0 = no answer came back)."""
    statuses = [0] * len(bodies)

    def send(index: int, path: str, body: Body, headers: dict[str, str]) -> None:
        content = iter(body) if isinstance(body, Streamed) else body
        try:
            statuses[index] = httpx.post(f"{url}{path}", content=content, headers=headers, timeout=timeout_s).status_code
        except httpx.HTTPError:
            statuses[index] = 0

    threads = [threading.Thread(target=send, args=(i, *b)) for i, b in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses
