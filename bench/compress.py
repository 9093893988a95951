"""Compression: each step's ONNX Runtime artifact against eager fp32 PyTorch on the same digits inputs.

One run, one thread for both runtimes, batch 1 and batch 32. Rows are cumulative: ORT fp32,
+PTQ (int8 QDQ), +pruning (channels x0.75 + 30% magnitude, fine-tuned), +distillation
(student at half width; the default artifact `shiftwatch retrain` registers). Timings are
taken in interleaved rounds (every variant once per round, median over rounds) so that
load from other processes on a shared machine hits all variants alike; wall time is the
headline, the calling thread's CPU time is reported beside it (both runtimes compute in
the calling thread with one intra-op thread).
Prints a table and writes bench/results/compress.json.

    python bench/compress.py [--rounds 7] [--calls 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table

from shiftwatch.examples.digits import split_digits
from shiftwatch.examples.digits_cnn import family, train_reference
from shiftwatch.retrain.compress import CompressConfig, compress, onnx_accuracy
from shiftwatch.retrain.measure import time_calls
from shiftwatch.retrain.runtime import OnnxClassifier
from shiftwatch.retrain.trainer import TrainConfig, accuracy

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine_facts

VARIANTS = (
    ("ORT fp32", ()),
    ("+PTQ", ("ptq",)),
    ("+pruning", ("prune", "ptq")),
    ("+distillation (default)", ("distill", "prune", "ptq")),
)
BATCHES = (1, 32)
console = Console(width=130)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=60, help="timed calls per variant, batch and round")
    args = parser.parse_args()
    torch.set_num_threads(1)
    splits = split_digits(0)
    test_x, test_y = splits.test.images, splits.test.labels

    started = time.monotonic()
    model = train_reference(0)
    console.print(f"reference CNN trained in {time.monotonic() - started:.1f} s")
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="shiftwatch-bench-"))
    family().save_weights(model, work / "reference.pt")
    rows = [{"variant": "PyTorch eager fp32 (peer)", "steps": [], "accuracy": accuracy(model, test_x, test_y),
             "size_bytes": (work / "reference.pt").stat().st_size}]  # fmt: skip
    runners = {rows[0]["variant"]: _torch_runner(model.module)}  # the bare network: no embedding tap on the peer
    for name, steps in VARIANTS:
        started = time.monotonic()
        result = compress(
            model, splits.train.images, splits.train.labels, splits.val.images, splits.val.labels,
            splits.train.images, work / (name.split()[0].strip("+") or "fp32"), TrainConfig(seed=0),
            CompressConfig(steps=steps), family=family(),
        )  # fmt: skip
        console.print(f"{name}: built in {time.monotonic() - started:.1f} s ({', '.join(result.steps_applied) or 'export only'})")
        torch.set_num_threads(1)
        rows.append({"variant": name, "steps": list(result.steps_applied), "accuracy": onnx_accuracy(result.path, test_x, test_y),
                     "size_bytes": result.path.stat().st_size, "details": result.details})  # fmt: skip
        runners[name] = _ort_runner(result.path)

    clocks = {"": time.perf_counter, "cpu_": time.thread_time}
    medians = {(name, batch, c): [] for name in runners for batch in BATCHES for c in clocks}
    for _ in range(args.rounds):
        for batch in BATCHES:
            x = np.ascontiguousarray(test_x[:batch])
            for name, make in runners.items():
                for prefix, clock in clocks.items():
                    medians[name, batch, prefix].append(float(np.median(time_calls(make(x), args.calls, clock=clock))))
    peer = rows[0]
    for row in rows:
        for batch in BATCHES:
            for prefix in clocks:
                row[f"{prefix}latency_ms_batch{batch}"] = round(float(np.median(medians[row["variant"], batch, prefix])), 4)
                row[f"{prefix}speedup_batch{batch}"] = round(
                    peer[f"{prefix}latency_ms_batch{batch}"] / row[f"{prefix}latency_ms_batch{batch}"], 2
                )
        row["smaller_x"] = round(peer["size_bytes"] / row["size_bytes"], 2)
        row["accuracy_delta_points"] = round(100 * (row["accuracy"] - peer["accuracy"]), 2)
    default = rows[-1]
    # Judged on the smaller of the wall-time and CPU-time speedups: on a loaded machine long
    # calls are preempted more often, which inflates the peer's wall time at batch 32.
    verdict = {
        "speedup_batch1_ge_5": min(default["speedup_batch1"], default["cpu_speedup_batch1"]) >= 5.0,
        "speedup_batch32_ge_5": min(default["speedup_batch32"], default["cpu_speedup_batch32"]) >= 5.0,
        "smaller_ge_3_5": default["smaller_x"] >= 3.5,
        "within_1_point": default["accuracy_delta_points"] >= -1.0,
    }
    _print(rows, verdict)
    out = Path(__file__).parent / "results" / "compress.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "compress", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_facts(), "torch": torch.__version__, "onnxruntime": ort.__version__, "threads": 1},
        "inputs": {"dataset": "sklearn digits 32x32, test split seed 0", "test_images": int(len(test_y))},
        "method": {"rounds": args.rounds, "calls_per_round": args.calls, "statistic": "median of per-round medians",
                   "clocks": "latency_* wall time (perf_counter); cpu_latency_* calling thread's CPU time (thread_time)"},
        "rows": rows, "default_meets_targets": verdict,
    }, indent=2) + "\n")  # fmt: skip
    console.print(f"wrote {out}")


def _torch_runner(model):
    model.eval()

    def make(x: np.ndarray):
        tensor = torch.from_numpy(x)

        def call() -> None:
            with torch.inference_mode():
                model(tensor)

        return call

    return make


def _ort_runner(path: Path):
    classifier = OnnxClassifier(path, "cpu", threads=1)

    def make(x: np.ndarray):
        feed = {classifier.input_name: x}
        return lambda: classifier.session.run(None, feed)

    return make


def _print(rows: list[dict], verdict: dict[str, bool]) -> None:
    table = Table(title="digits CNN: eager PyTorch fp32 vs ONNX Runtime artifacts (1 thread)")
    for column in ("variant", "top-1 %", "Δ pts", "size KB", "smaller", "b1 ms", "b1 speedup", "b32 ms", "b32 speedup",
                   "b1 cpu", "b32 cpu"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in rows:
        table.add_row(
            row["variant"], f"{100 * row['accuracy']:.2f}", f"{row['accuracy_delta_points']:+.2f}",
            f"{row['size_bytes'] / 1024:.0f}", f"{row['smaller_x']:.1f}x", f"{row['latency_ms_batch1']:.3f}",
            f"{row['speedup_batch1']:.1f}x", f"{row['latency_ms_batch32']:.3f}", f"{row['speedup_batch32']:.1f}x",
            f"{row['cpu_speedup_batch1']:.1f}x", f"{row['cpu_speedup_batch32']:.1f}x",
        )  # fmt: skip
    console.print(table)
    console.print("default artifact meets targets: " + ", ".join(f"{k}={v}" for k, v in verdict.items()))


if __name__ == "__main__":
    main()
