"""Camera streams: false-positive rate on quiet, autocorrelated streams; detection delay after a real change; large windows.

A synthetic camera stream per camera: the scene (a held-out digits image) changes at
random times (mean 40 frames), brightness drifts as an AR(1) process (phi 0.98, sd 0.05)
and the framing jitters (AR(1) pixel offsets, phi 0.9): consecutive frames are strongly
dependent, as on a real camera, while the process is stationary (no drift anywhere).
Frames are embedded and classified by the project's reference CNN.

(1) FPR: >= 200 pairs of (reference, current) windows of 150 frames per camera, taken at
random far-apart times, for each detector with and without ``stream_ids`` / ``timestamps``.
(2) Delay: a corruption starts at frame T0 on one camera or on all of them; a window of the
last 150 frames per camera is tested every 20 frames; delay = first flagged frame - T0.
(3) Large windows: 50,000 samples per window with a mild corruption (accuracy moves < 0.5
points): the alert's severity by estimated harm (harm.severity).
Writes bench/results/detectors_streams.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from shiftwatch.detectors import DETECTORS
from shiftwatch.detectors.harm import estimate_harm, severity
from shiftwatch.examples import digits
from shiftwatch.examples.digits_cnn import train_reference
from shiftwatch.retrain.trainer import predict

OUT = Path(__file__).resolve().parent / "results" / "detectors_streams.json"
ALPHA = 0.05
CAMERAS, FRAMES, PER_WINDOW = 4, 4000, 150
NULL_WINDOWS = 200
T0, CHANGE_FRAMES, STEP = 400, 400, 20
METHODS = {"mmd": {"n_permutations": 99}, "lsdd": {"n_permutations": 99}, "ks": {}, "bbsd": {}}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    x = np.empty(n)
    x[0] = rng.normal(0, sd)
    noise = rng.normal(0, sd * np.sqrt(1 - phi**2), n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    return x


def camera_frames(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    """One camera's frames: scenes held for ~40 frames, drifting brightness, jittering framing."""
    changes = np.cumsum(rng.random(n) < 1 / 40)
    scene = rng.integers(0, len(pool), changes[-1] + 1)[changes]
    brightness = ar1(rng, n, 0.98, 0.05)
    dx = np.round(ar1(rng, n, 0.9, 0.7)).astype(int)
    dy = np.round(ar1(rng, n, 0.9, 0.7)).astype(int)
    frames = np.empty((n, 1, 32, 32), dtype=np.float32)
    for t in range(n):
        frames[t, 0] = np.roll(pool[scene[t], 0], (dy[t], dx[t]), axis=(0, 1)) + brightness[t]
    return np.clip(frames, 0.0, 1.0)


def windows(data: dict, starts: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frames [start, start + PER_WINDOW) of every camera: embeddings, probs, stream ids, timestamps."""
    rows = np.concatenate([camera * FRAMES + np.arange(start, start + PER_WINDOW) for camera, start in enumerate(starts)])
    return data["embeddings"][rows], data["probs"][rows], data["stream"][rows], data["time"][rows]


def run(name: str, reference: tuple, current: tuple, aware: bool):
    r_emb, r_probs, r_ids, r_ts = reference
    c_emb, c_probs, c_ids, c_ts = current
    r_data, c_data = (r_probs, c_probs) if name == "bbsd" else (r_emb, c_emb)
    context = lambda ids, ts: {"stream_ids": ids, "timestamps": ts} if aware else {}
    detector = DETECTORS[name](alpha=ALPHA, **METHODS[name]).fit(r_data, **context(r_ids, r_ts))
    return detector.test(c_data, **context(c_ids, c_ts))


def main() -> None:
    console = Console()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    splits = digits.split_digits(0)
    pool = np.concatenate([splits.val.images, splits.test.images])
    pool_labels = np.concatenate([splits.val.labels, splits.test.labels])
    model = train_reference(seed=0)

    with console.status("rendering and embedding camera streams ..."):
        frames = np.concatenate([camera_frames(rng, pool, FRAMES) for _ in range(CAMERAS)])
        logits, embeddings = predict(model, frames)
        data = {
            "embeddings": embeddings,
            "probs": softmax(logits.astype(np.float64)),
            "stream": np.repeat([f"cam-{c}" for c in range(CAMERAS)], FRAMES),
            "time": np.tile(np.arange(FRAMES) * 0.2, CAMERAS),  # 5 frames per second
        }

    # (1) False-positive rate on the quiet stream.
    fpr: dict[str, dict[str, float]] = {}
    with console.status(f"{NULL_WINDOWS} null windows ..."):
        flags: dict[tuple[str, bool], list[bool]] = {}
        for trial in range(NULL_WINDOWS):
            r = np.random.default_rng(1000 + trial)
            first = r.integers(0, FRAMES // 2 - PER_WINDOW, CAMERAS)
            second = r.integers(FRAMES // 2, FRAMES - PER_WINDOW, CAMERAS)
            reference, current = windows(data, list(first)), windows(data, list(second))
            for name in METHODS:
                for aware in (False, True):
                    flags.setdefault((name, aware), []).append(run(name, reference, current, aware).drift)
        for (name, aware), values in flags.items():
            fpr.setdefault(name, {})["stream_aware" if aware else "naive"] = float(np.mean(values))

    # (2) Detection delay after a corruption starts on one camera or on all.
    delays: dict[str, dict[str, float | None]] = {}
    with console.status("detection delay ..."):
        reference = windows(data, [0] * CAMERAS)
        for scope in ("one_camera", "all_cameras"):
            changed = {key: value.copy() for key, value in data.items()}
            cameras = [0] if scope == "one_camera" else list(range(CAMERAS))
            for camera in cameras:
                rows = camera * FRAMES + np.arange(FRAMES // 2 + T0, FRAMES // 2 + T0 + CHANGE_FRAMES)
                corrupted = digits.corrupt(frames[rows], "gaussian_noise", 3, rng)
                c_logits, c_emb = predict(model, corrupted)
                changed["embeddings"][rows], changed["probs"][rows] = c_emb, softmax(c_logits.astype(np.float64))
            for name in METHODS:
                delay = None
                for end in range(T0 + STEP, T0 + CHANGE_FRAMES + 1, STEP):
                    start = FRAMES // 2 + end - PER_WINDOW
                    if run(name, reference, windows(changed, [start] * CAMERAS), aware=True).drift:
                        delay = end - T0
                        break
                delays.setdefault(name, {})[scope] = delay

    # (3) Large windows, mild corruption: significant maybe, but low severity by harm.
    with console.status("50,000-sample windows ..."):
        pool_logits, pool_emb = predict(model, pool)
        pool_probs = softmax(pool_logits.astype(np.float64))
        draw = rng.integers(0, len(pool), 2000)
        mild = digits.corrupt(pool[draw], "brightness", 1, rng)
        mild_logits, mild_emb = predict(model, mild)
        mild_probs = softmax(mild_logits.astype(np.float64))
        ref_rows, cur_rows = rng.integers(0, len(pool), 50_000), rng.integers(0, len(draw), 50_000)
        true_drop = 100 * (
            float((pool_probs.argmax(1)[ref_rows] == pool_labels[ref_rows]).mean())
            - float((mild_probs.argmax(1)[cur_rows] == pool_labels[draw][cur_rows]).mean())
        )
        result = DETECTORS["mmd"]().fit(pool_emb[ref_rows]).test(mild_emb[cur_rows])
        harm = estimate_harm(pool_probs[ref_rows], pool_labels[ref_rows], mild_probs[cur_rows])
        large = {
            "window": 50_000,
            "corruption": "brightness severity 1",
            "true_accuracy_drop_points": true_drop,
            "mmd_p_value": result.p_value,
            "mmd_effect_size": result.effect_size,
            "mmd_drift": result.drift,
            "estimated_harm_points": harm.estimated_drop_points,
            "severity": severity(result, harm.estimated_drop_points),
        }

    table = Table(title=f"quiet camera streams: FPR over {NULL_WINDOWS} windows ({CAMERAS} cameras x {PER_WINDOW} frames), alpha {ALPHA}")
    for column in ("method", "naive FPR", "stream-aware FPR", "delay, 1 camera (frames)", "delay, all cameras"):
        table.add_column(column)
    for name in METHODS:
        table.add_row(name, f"{fpr[name]['naive']:.3f}", f"{fpr[name]['stream_aware']:.3f}", str(delays[name]["one_camera"]), str(delays[name]["all_cameras"]))
    console.print(table)
    console.print(large)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({
        "setup": {"cameras": CAMERAS, "frames_per_camera": FRAMES, "frames_per_window_per_camera": PER_WINDOW,
                  "null_windows": NULL_WINDOWS, "alpha": ALPHA, "change": "gaussian_noise severity 3", "t0": T0,
                  "step": STEP, "methods": METHODS, "seconds": time.perf_counter() - started},
        "fpr": fpr, "detection_delay_frames": delays, "large_window": large,
    }, indent=2))
    console.print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
