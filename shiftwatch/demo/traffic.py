"""Production traffic for the demo: images the reference model never saw, optionally corrupted, and who serves them.

Two sources: the held-out split of the 32x32 digits (``Traffic.held_out``) and freshly
rendered textured digits at 3x96x96 for the realistic ResNet example (``Traffic.textured``).

The demo knows the true digit of every request it sends (kept by request id), which is
what lets it plot real accuracy over time and what the built-in labeling oracle answers from.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from shiftwatch.examples import digits, textured_digits

# corrupt(images, corruption, severity, rng) -> images of the same shape and dtype
Corrupt = Callable[[np.ndarray, str, int, np.random.Generator], np.ndarray]


@dataclass(frozen=True, slots=True)
class Drift:
    """The corruption injected part-way through the stream (MNIST-C style families, shiftwatch.examples.digits)."""

    corruption: str
    severity: int
    story: str  # what happened in the world, in one sentence of narration


@dataclass
class Traffic:
    """Draws requests from a pool of unseen images, applies the current drift, and remembers every true label."""

    images: np.ndarray
    labels: np.ndarray
    rng: np.random.Generator
    corrupt: Corrupt  # the corruption families that fit these images
    encode: Callable[[np.ndarray], bytes]  # one image as the PNG a client sends
    drift: Drift | None = None
    truth: dict[str, int] = field(default_factory=dict)  # request id -> true digit
    truth_by_input: dict[str, int] = field(default_factory=dict)  # input_ref -> true digit
    sent: int = 0

    @classmethod
    def held_out(cls, seed: int = 0) -> Traffic:
        """The digits' held-out split (float (N, 1, 32, 32) in 0..1), grayscale PNGs."""
        test = digits.split_digits(seed).test
        return cls(test.images, test.labels, np.random.default_rng(seed + 1), digits.corrupt, digits.encode_png)

    @classmethod
    def textured(cls, images: int, seed: int) -> Traffic:
        """``images`` textured digits (uint8 (N, 96, 96, 3)) rendered with their own seed, RGB PNGs."""
        pool, labels = textured_digits.render(images, seed=seed)
        return cls(pool, labels, np.random.default_rng(seed + 1), textured_digits.corrupt, textured_digits.encode_png)

    def next_batch(self, size: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(request ids, images, true labels) of the next ``size`` requests."""
        index = self.rng.integers(0, len(self.labels), size)
        images, labels = self.images[index], self.labels[index]
        if self.drift is not None:
            images = self.corrupt(images, self.drift.corruption, self.drift.severity, self.rng)
        ids = [f"req-{self.sent + i:06d}" for i in range(size)]
        self.sent += size
        self.truth.update(zip(ids, (int(label) for label in labels)))
        return ids, images, labels


@dataclass(frozen=True, slots=True)
class Answers:
    """What came back for one batch: the version and route that answered each request, and its class."""

    versions: list[str]
    routes: list[str]
    predicted: np.ndarray
    latency_ms: np.ndarray


class GatewayServing:
    """Send every request as a PNG to the gateway (POST /v1/models/{name}/predict), several at a time.

    Concurrent requests are what the gateway's dynamic batching gathers into one ONNX Runtime
    call; the gateway stores each input and logs each prediction itself.
    """

    # Requests in flight at once: enough for the gateway to form batches, few enough for 2 cores.
    CONCURRENCY = 16

    def __init__(self, api_url: str, model: str, headers: dict[str, str] | None = None) -> None:
        self.url = f"{api_url}/v1/models/{model}/predict"
        self.headers = headers or {}

    def serve(self, traffic: Traffic, ids: list[str], images: np.ndarray) -> Answers:
        bodies = [traffic.encode(image) for image in images]
        for request_id, body in zip(ids, bodies):
            # The gateway stores the bytes it was sent under their sha256: the same reference labeling sees.
            traffic.truth_by_input[f"inputs/{hashlib.sha256(body).hexdigest()}.png"] = traffic.truth[request_id]
        replies = asyncio.run(self._send_all(ids, bodies))
        return Answers(
            versions=[r[0]["version"] for r in replies],
            routes=[r[0]["route"] for r in replies],
            predicted=np.asarray([r[0]["class"] for r in replies]),  # PredictOut serializes it as "class"
            latency_ms=np.asarray([r[1] for r in replies]),
        )

    async def _send_all(self, ids: list[str], bodies: list[bytes]) -> list[tuple[dict[str, Any], float]]:
        limit = asyncio.Semaphore(self.CONCURRENCY)
        async with httpx.AsyncClient(timeout=30.0) as client:

            async def send(request_id: str, body: bytes, camera: int) -> tuple[dict[str, Any], float]:
                headers = {**self.headers, "content-type": "image/png", "x-request-id": request_id,
                           "x-stream-id": f"camera-{camera}", "x-client-key": request_id}
                async with limit:
                    started = time.perf_counter()
                    response = await client.post(self.url, content=body, headers=headers)
                    elapsed = (time.perf_counter() - started) * 1000.0
                response.raise_for_status()
                return response.json(), elapsed

            return await asyncio.gather(*(send(r, b, i % 4) for i, (r, b) in enumerate(zip(ids, bodies))))
