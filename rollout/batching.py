"""Dynamic batching: concurrent requests for one model version gathered into one ONNX Runtime call.

A batch closes when it holds ``max_batch_size`` images, when ``max_wait_s`` has passed since its
first image, or when every request now inside the server for this model (counted from before its
body is read) is already in it: waiting for requests that do not exist only adds latency (at
concurrency 1 a request never waits).
With ``max_batch_size == 1`` every request is its own ORT call in the thread pool (the baseline
that bench/gateway.py compares against). With ``parallelism`` > 1 a closed batch runs as that many
near-equal chunks at once in the pool: one batch in flight otherwise keeps all but one core idle
while the unbatched baseline's concurrent calls use every core (bench/own_model.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

# Post-processed outputs of one batch: probabilities (n, k), embeddings (n, d).
BatchOutput = tuple[np.ndarray, np.ndarray]


@dataclass(slots=True)
class InFlight:
    """Requests for one model between arrival and answer; shared by the model's batchers (one event loop)."""

    n: int = 0


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
        in_flight: InFlight | None = None,
        parallelism: int = 1,
    ) -> None:
        self.run = run
        self.parallelism = max(1, parallelism)
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.executor = executor
        self.batch_sizes: Counter[int] = Counter()  # ORT call size -> how many calls (tests and /stats read it)
        self.in_flight = in_flight or InFlight()
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[ImageResult]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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
            self._loop = loop
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
                if remaining <= 0 or len(batch) >= self.in_flight.n:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            chunks = np.array_split(np.stack([image for image, _ in batch]), min(self.parallelism, len(batch)))
            try:
                outputs = await asyncio.gather(*(loop.run_in_executor(self.executor, self.run, chunk) for chunk in chunks))
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the model's failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            probabilities, embeddings = (np.concatenate([output[part] for output in outputs]) for part in (0, 1))
            sizes = [len(chunk) for chunk in chunks for _ in chunk]  # each image's ORT call size
            self.batch_sizes.update(len(chunk) for chunk in chunks)
            for index, (_, future) in enumerate(batch):
                if not future.done():
                    future.set_result(ImageResult(probabilities[index], embeddings[index], sizes[index]))

    def close(self) -> None:
        """Stop the worker; safe from any thread. A request that still arrives starts a new one."""
        if self._worker is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._worker.cancel)


class Runner(Protocol):
    """Where a served version's inference runs: a local ``DynamicBatcher``, or a Ray Serve deployment."""

    batch_sizes: Counter[int]  # ORT call size -> calls (as far as this process can see)

    @property
    def backlog(self) -> int: ...

    async def submit(self, image: np.ndarray) -> ImageResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class VersionToRun:
    """What a ``RunnerFactory`` gets: the registry row's identity and its checked artifact."""

    version_id: int
    model: str
    version: str
    artifact: Path
    sha256: str | None
    shadow: bool  # a shadow copy: must never take the production path's threads


# Builds the runner of one version; a ShiftwatchError refuses to serve that version (logged, not retried).
RunnerFactory = Callable[[VersionToRun], Runner]
