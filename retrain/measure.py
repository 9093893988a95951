"""Latency percentiles of an ONNX Runtime artifact at batch 1 and 32, one intra-op thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shiftwatch.retrain.runtime import OnnxClassifier

BATCH_SIZES = (1, 32)


def time_calls(
    call: Callable[[], object], repeats: int, warmup: int = 5, clock: Callable[[], float] = time.perf_counter
) -> np.ndarray:
    """Time of ``repeats`` calls of ``call()`` in milliseconds (after ``warmup`` calls).

    ``clock=time.thread_time`` measures CPU time of the calling thread instead of wall time:
    with one intra-op thread both torch and ORT compute in the caller, so it is the same
    work, minus the time other processes on a shared machine held the core.
    """
    for _ in range(warmup):
        call()
    times = np.empty(repeats)
    for i in range(repeats):
        start = clock()
        call()
        times[i] = clock() - start
    return times * 1e3


def latency_report(
    path: str | Path, images: np.ndarray, repeats: int = 100, threads: int = 1
) -> dict[str, dict[str, float]]:
    """{"batch1": {"p50_ms", "p99_ms"}, "batch32": {...}} on the CPU provider."""
    classifier = OnnxClassifier(path, "cpu", threads=threads)
    out: dict[str, dict[str, float]] = {}
    for batch in BATCH_SIZES:
        x = np.ascontiguousarray(np.resize(images, (batch, *images.shape[1:])), dtype=np.float32)
        feed = {classifier.input_name: x}
        times = time_calls(lambda: classifier.session.run(None, feed), repeats)  # noqa: B023 - called in this iteration
        out[f"batch{batch}"] = {
            "p50_ms": round(float(np.percentile(times, 50)), 4),
            "p99_ms": round(float(np.percentile(times, 99)), 4),
        }
    return out
