"""Dynamic batching: concurrent requests for one model version gathered into one ONNX Runtime call.

A batch closes when it holds ``max_batch_size`` images, when ``max_wait_s`` has passed since its
first image, or when every request now inside the gateway for this version is already in it:
waiting for requests that do not exist only adds latency (at concurrency 1 a request never waits).
With ``max_batch_size == 1`` every request is its own ORT call in the thread pool (the baseline
that bench/gateway.py compares against).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

# Post-processed outputs of one batch: probabilities (n, k), embeddings (n, d).
BatchOutput = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, slots=True)
class ImageResult:
    """One image's share of a batch's outputs."""

    probabilities: np.ndarray
    embedding: np.ndarray
    batch_size: int


class DynamicBatcher:
    """Queue + one worker task on the serving event loop; ``run`` (the ORT call) runs in ``executor``.

    ``run`` maps a batch (N, C, H, W) to (probabilities (N, K), embeddings (N, D)).
    """

    def __init__(
        self,
        run: Callable[[np.ndarray], BatchOutput],
        *,
        max_batch_size: int,
        max_wait_s: float,
        executor: Executor,
    ) -> None:
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.executor = executor
        self.batch_sizes: Counter[int] = Counter()  # ORT call size -> how many calls (tests and /stats read it)
        self.active = 0  # requests inside the gateway for this version (decoding, queued or computing)
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[ImageResult]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def submit(self, image: np.ndarray) -> ImageResult:
        """Run one (C, H, W) image; returns when its batch is done."""
        loop = asyncio.get_running_loop()
        if self.max_batch_size == 1:
            probabilities, embeddings = await loop.run_in_executor(self.executor, self.run, image[None])
            self.batch_sizes[1] += 1
            return ImageResult(probabilities[0], embeddings[0], 1)
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._work(self._queue))
        future: asyncio.Future[ImageResult] = loop.create_future()
        self._queue.put_nowait((image, future))
        return await future

    async def _work(self, queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[ImageResult]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0 or len(batch) >= self.active:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            images = np.stack([image for image, _ in batch])
            try:
                probabilities, embeddings = await loop.run_in_executor(self.executor, self.run, images)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the model's failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batch_sizes[len(batch)] += 1
            for index, (_, future) in enumerate(batch):
                if not future.done():
                    future.set_result(ImageResult(probabilities[index], embeddings[index], len(batch)))

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
