"""The batcher's parallel chunks: a gathered batch runs as concurrent ORT-sized calls and every image gets its own answer."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from shiftwatch.rollout.batching import DynamicBatcher


def _run_batch(parallelism: int) -> tuple[list, DynamicBatcher, int]:
    """16 concurrent images through one batcher; each image's answer, the batcher and the most calls at once."""
    lock, running, peak = threading.Lock(), [0], [0]

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)  # long enough for the chunks of one batch to overlap
        with lock:
            running[0] -= 1
        sums = batch.reshape(len(batch), -1).sum(axis=1, keepdims=True)
        return np.hstack([sums, -sums]), sums * 2

    async def main() -> tuple[list, DynamicBatcher]:
        with ThreadPoolExecutor(max_workers=4) as executor:
            batcher = DynamicBatcher(run, max_batch_size=16, max_wait_s=0.05, executor=executor, parallelism=parallelism)
            results = await asyncio.gather(*(batcher.submit(np.full((1, 2, 2), float(i))) for i in range(16)))
            batcher.close()
            return list(results), batcher

    results, batcher = asyncio.run(main())
    return results, batcher, peak[0]


def test_a_batch_splits_into_concurrent_chunks_and_each_image_gets_its_own_answer():
    results, batcher, peak = _run_batch(parallelism=4)
    assert [float(r.probabilities[0]) for r in results] == [4.0 * i for i in range(16)]
    assert [float(r.embedding[0]) for r in results] == [8.0 * i for i in range(16)]
    assert dict(batcher.batch_sizes) == {4: 4} and {r.batch_size for r in results} == {4}
    assert peak == 4


def test_parallelism_one_keeps_one_ort_call_per_batch():
    results, batcher, peak = _run_batch(parallelism=1)
    assert [float(r.probabilities[0]) for r in results] == [4.0 * i for i in range(16)]
    assert dict(batcher.batch_sizes) == {16: 1} and peak == 1
