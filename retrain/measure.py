"""Latency percentiles of an ONNX Runtime artifact at batch 1 and 32, one intra-op thread."""

from __future__ import annotations

import platform
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


def compare_latency(
    baseline: str | Path, candidate: str | Path, images: np.ndarray, repeats: int = 30, threads: int = 1,
    provider: str = "cpu",
) -> dict[str, dict[str, float]]:
    """Median time per call (ms) of two artifacts at batch 1 and 32 on ``provider`` (CPU: one thread).

    Calls alternate between the two. On the CPU provider the calling thread's CPU time (not wall) is
    what counts: on a shared machine a burst of load from other processes then falls on both alike.
    Other providers run in threads or devices of their own, so their wall time is what counts there.
    """
    clock = time.thread_time if provider == "cpu" else time.perf_counter
    sessions = [OnnxClassifier(path, provider, threads=threads) for path in (baseline, candidate)]
    out: dict[str, dict[str, float]] = {}
    for batch in BATCH_SIZES:
        x = np.ascontiguousarray(np.resize(images, (batch, *images.shape[1:])), dtype=np.float32)
        calls = [lambda s=s: s.session.run(None, {s.input_name: x}) for s in sessions]  # noqa: B023 - called in this iteration
        for call in calls:
            time_calls(call, 1, warmup=3)
        times = np.array([[time_calls(call, 1, warmup=0, clock=clock)[0] for call in calls] for _ in range(repeats)])
        base_ms, cand_ms = np.median(times, axis=0)
        out[f"batch{batch}"] = {"baseline_ms": round(float(base_ms), 4), "candidate_ms": round(float(cand_ms), 4),
                                "ratio": round(float(cand_ms / base_ms), 3)}  # fmt: skip
    return out


def cpu_name() -> str:
    """This CPU's model name (/proc/cpuinfo), which int8 speed depends on (VNNI, AVX-512); the architecture elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
