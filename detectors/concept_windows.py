"""Synthetic uniform labels under concept drift, for tests and bench/concept_drift.py.

Each camera's stream of labeled predictions is right or wrong in runs: a two-state Markov chain
with stationary accuracy ``accuracy`` and lag-1 autocorrelation ``stickiness`` (a hard scene stays
hard for a while). Concept drift remaps the label of one class for ``remap_share`` of all traffic:
those predictions, right by the old definition, are wrong by the new one, so the accuracy falls by
about ``accuracy * remap_share`` while every input and confidence stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shiftwatch.detectors.correctness import Outcomes


@dataclass(frozen=True, slots=True)
class Traffic:
    """How labeled traffic is drawn: its accuracy, how many cameras, how sticky each camera's outcomes are."""

    accuracy: float = 0.9
    streams: int = 8
    stickiness: float = 0.3  # lag-1 autocorrelation of right/wrong within a camera


def sticky_outcomes(traffic: Traffic, n: int, rng: np.random.Generator) -> np.ndarray:
    """0/1 correctness of ``n`` labels, camera after camera, each camera a Markov chain at ``traffic.accuracy``."""
    a, rho = traffic.accuracy, traffic.stickiness
    stay_right, become_right = a + rho * (1.0 - a), a * (1.0 - rho)  # P(right | right before), P(right | wrong before)
    out = np.empty(n)
    per_stream = -(-n // traffic.streams)
    for start in range(0, n, per_stream):
        right = rng.random() < a
        for i in range(start, min(start + per_stream, n)):
            right = rng.random() < (stay_right if right else become_right)
            out[i] = right
    return out


def window(traffic: Traffic, n: int, rng: np.random.Generator, remap_share: float = 0.0) -> Outcomes:
    """``n`` uniform labels of one window (cameras interleaved in time), a ``remap_share`` of traffic relabeled."""
    correct = sticky_outcomes(traffic, n, rng)
    remapped = rng.random(n) < remap_share
    correct[remapped] = 0.0  # the old right answer is wrong under the new definition
    per_stream = -(-n // traffic.streams)
    stream = np.arange(n) // per_stream
    position = np.arange(n) - stream * per_stream
    timestamps = np.datetime64("2026-01-01T00:00:00", "us") + (position * traffic.streams + stream).astype("timedelta64[s]")
    return Outcomes(correct=correct, stream_ids=[f"cam-{s}" for s in stream], timestamps=timestamps,
                    rows=np.arange(n), source="synthetic uniform labels")  # fmt: skip
