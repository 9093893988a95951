"""Bring your own model, measured: the ResNet-18 example through the generic compression path and the batcher.

One run. The network is trained from scratch (one-cycle Adam, channels-last on one thread).
The peer is the same trained network in eager fp32 PyTorch on one thread; the default
compressed artifact (torch-pruning channels x0.75 + fine-tune, then ORT int8 PTQ; the generic
path a contract model gets) runs in ONNX Runtime on one thread. Timings are interleaved
rounds, median of medians, wall and calling-thread CPU time (as bench/compress.py).
Serving: the gateway's ``DynamicBatcher`` in process (no HTTP) at concurrency 32, batched
(max 32, 5 ms, the batch split over the cores) against unbatched (max 1, concurrent calls in
the pool), over the same artifact; and ORT alone on the same threads, the ceiling of what
batching can gain. Prints a table and writes bench/results/own_model.json.

    python bench/own_model.py [--width 0.25] [--images 8000] [--epochs 8]   # --width 1.0: full ResNet-18
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch_pruning as tp

from shiftwatch.examples import resnet, textured_digits
from shiftwatch.examples.digits import stratified_split
from shiftwatch.retrain.compress import CompressConfig, compress, onnx_accuracy
from shiftwatch.retrain.contract import InputSpec
from shiftwatch.retrain.contract_family import ContractFamily, PruneConfig
from shiftwatch.retrain.measure import time_calls
from shiftwatch.retrain.model_contract import TorchContract
from shiftwatch.retrain.runtime import OnnxClassifier
from shiftwatch.retrain.torch_contract import build, save_module_weights
from shiftwatch.retrain.trainer import TrainConfig, accuracy, deterministic, fit
from shiftwatch.rollout.batching import DynamicBatcher

sys.path.insert(0, str(Path(__file__).parent))
from compress import _ort_runner, _torch_runner
from machine import load_average, machine_facts

BATCHES = (1, 32)
CONCURRENCY = 32
CORES = os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25, help="ResNet-18 channel multiplier (1.0: 64-128-256-512)")
    parser.add_argument("--images", type=int, default=8000, help="images rendered for train+val+test (65/15/20)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak of the one-cycle schedule")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--requests", type=int, default=640, help="requests per serving measurement")
    args = parser.parse_args()
    started, load_at_start = time.monotonic(), load_average()
    spec = InputSpec.from_dict(resnet.INPUT_SPEC)
    raw, labels = textured_digits.render(args.images, seed=0)
    splits = stratified_split(spec.from_uint8(raw), labels, seed=0)
    contract = TorchContract(resnet.FACTORY)
    family = ContractFamily(contract, spec)
    with deterministic(0):
        model = build(contract, width=args.width)
    config = TrainConfig(epochs=args.epochs, lr=args.lr, seed=0, schedule="onecycle")
    model.module.to(memory_format=torch.channels_last)  # ~1.25x faster convolutions on one thread
    fit(model, splits.train.images, splits.train.labels, config)
    model.module.to(memory_format=torch.contiguous_format)
    trained_s = time.monotonic() - started
    print(f"trained in {trained_s:.0f} s")
    macs, params = tp.utils.count_ops_and_params(model.module, torch.zeros((1, *spec.shape)))
    work = Path(tempfile.mkdtemp(prefix="shiftwatch-bench-own-"))
    save_module_weights(model, work / "weights.pt")
    # The generic path a contract model gets; distillation is left out (from scratch it needs more data than this).
    # 4 fine-tune epochs: after 2 the pruned ResNet was 1.3 points short of its fp32 parent (PTQ cost nothing).
    prune = PruneConfig(finetune_epochs=4)
    result = compress(model, splits.train.images, splits.train.labels, splits.val.images, splits.val.labels,
                      splits.train.images, work, config, CompressConfig(steps=("prune", "ptq"), prune=prune), family=family)  # fmt: skip
    torch.set_num_threads(1)
    test_x, test_y = splits.test.images, splits.test.labels
    peer_accuracy, artifact_accuracy = accuracy(model, test_x, test_y), onnx_accuracy(result.path, test_x, test_y)
    timings = _latencies({"torch": _torch_runner(model), "artifact": _ort_runner(result.path)}, test_x, args)
    serving = _serving(result.path, test_x, args.requests, args.rounds)
    ceiling = _ort_ceiling(result.path, test_x, args.requests, args.rounds)
    out = {
        "benchmark": "own_model", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine_facts(), "load_average_at_start": load_at_start, "torch": torch.__version__,
                    "onnxruntime": ort.__version__, "threads": 1},
        "architecture": f"ResNet-18 (plain PyTorch, shiftwatch.examples.resnet), width {args.width}",
        "input_shape": list(spec.shape), "params": int(params), "macs": int(macs),
        "dataset": f"textured digits (shiftwatch/examples/textured_digits.py), {len(splits.train)} train / {len(test_y)} test",
        "epochs": args.epochs, "prune_config": {"keep_fraction": prune.keep_fraction, "finetune_epochs": prune.finetune_epochs},
        "train_config": {"lr": args.lr, "schedule": config.schedule, "batch_size": config.batch_size},
        "train_s": round(trained_s, 1), "steps_applied": list(result.steps_applied), "compression": result.details,
        "accuracy_fp32": round(peer_accuracy, 4), "accuracy_artifact": round(artifact_accuracy, 4),
        "accuracy_delta_points": round(100 * (artifact_accuracy - peer_accuracy), 2),
        "size_ratio": round((work / "weights.pt").stat().st_size / result.path.stat().st_size, 2),
        **{f"{clock}speedup_batch{b}": round(timings["torch", b, clock] / timings["artifact", b, clock], 2)
           for b in BATCHES for clock in ("", "cpu_")},
        "latency_ms": {f"{name}_batch{b}{'_cpu' if clock else ''}": round(timings[name, b, clock], 3)
                       for name in ("torch", "artifact") for b in BATCHES for clock in ("", "cpu_")},
        "batched_over_unbatched_c32": round(serving["batched"]["throughput"] / serving["unbatched"]["throughput"], 2),
        "p99_ms_c32": serving["batched"]["p99_ms"], "serving": serving,
        "batched_one_call_over_unbatched_c32": round(serving["batched_one_call"]["throughput"] / serving["unbatched"]["throughput"], 2),
        "ort_only": ceiling, "ort_only_batch32_over_batch1": round(ceiling["batch32"] / ceiling["batch1"], 2),
        # Per-image CPU time of the artifact at batch 1 over batch 32 (one thread): what batching saves ORT itself.
        "ort_cpu_per_image_batch1_over_batch32": round(32 * timings["artifact", 1, "cpu_"] / timings["artifact", 32, "cpu_"], 2),
        "serving_method": f"DynamicBatcher in process (no HTTP, no PNG decoding), ORT 1 intra-op thread per call, "
                          f"pool of {max(4, CORES)} threads; batched: max 32, 5 ms, each batch split in {CORES} chunks "
                          f"(batched_one_call: one ORT call per batch); ort_only: ORT alone on {CORES} threads",
        "wall_s": round(time.monotonic() - started, 1),
    }  # fmt: skip
    path = Path(__file__).parent / "results" / "own_model.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    for key in ("architecture", "params", "macs", "accuracy_artifact", "speedup_batch1", "cpu_speedup_batch1", "speedup_batch32",
                "cpu_speedup_batch32", "size_ratio", "accuracy_fp32", "accuracy_delta_points", "batched_over_unbatched_c32",
                "batched_one_call_over_unbatched_c32", "ort_only_batch32_over_batch1",
                "ort_cpu_per_image_batch1_over_batch32", "p99_ms_c32"):  # fmt: skip
        print(f"{key:28} {out[key]}")
    print(f"wrote {path}")


def _latencies(runners: dict, images: np.ndarray, args: argparse.Namespace) -> dict:
    clocks = {"": time.perf_counter, "cpu_": time.thread_time}
    samples: dict = {}
    for _ in range(args.rounds):
        for batch in BATCHES:
            x = np.ascontiguousarray(np.resize(images, (batch, *images.shape[1:])))
            for name, make in runners.items():
                for prefix, clock in clocks.items():
                    samples.setdefault((name, batch, prefix), []).append(float(np.median(time_calls(make(x), args.calls, clock=clock))))
    return {key: float(np.median(values)) for key, values in samples.items()}


SERVING_MODES = {"batched": (32, CORES), "unbatched": (1, 1), "batched_one_call": (32, 1)}  # (max batch, parallelism)


def _serving(path: Path, images: np.ndarray, requests: int, rounds: int) -> dict[str, dict[str, float]]:
    """Each mode in interleaved rounds, the median of each figure: one ~1 s run is noise on a shared host."""
    runs: dict[str, list[dict[str, float]]] = {}
    for _ in range(rounds):
        for name, (size, parallel) in SERVING_MODES.items():
            runs.setdefault(name, []).append(asyncio.run(_serve(path, images, size, parallel, requests)))
    return {name: {key: round(float(np.median([r[key] for r in results])), 2) for key in results[0]} for name, results in runs.items()}


async def _serve(path: Path, images: np.ndarray, max_batch: int, parallelism: int, requests: int) -> dict[str, float]:
    """``requests`` images from ``CONCURRENCY`` concurrent clients through one batcher; throughput and p99."""
    classifier = OnnxClassifier(path, "cpu", threads=1)

    def run(batch: np.ndarray):
        output = classifier.run(batch)
        return output.probabilities, output.embeddings

    executor = ThreadPoolExecutor(max_workers=max(4, CORES))  # as the gateway's ORT pool
    batcher = DynamicBatcher(run, max_batch_size=max_batch, max_wait_s=0.005, executor=executor, parallelism=parallelism)
    latencies: list[float] = []

    async def client(index: int) -> None:
        for i in range(index, requests, CONCURRENCY):
            begin = time.perf_counter()
            await batcher.submit(images[i % len(images)])
            latencies.append((time.perf_counter() - begin) * 1000)

    begin = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(CONCURRENCY)))
    elapsed = time.perf_counter() - begin
    batcher.close()
    executor.shutdown()
    return {"throughput": round(requests / elapsed, 1), "p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2)}  # fmt: skip


def _ort_ceiling(path: Path, images: np.ndarray, requests: int, rounds: int) -> dict[str, float]:
    """Images/s of ORT alone on ``CORES`` threads at once, batch-1 calls against batch-32 calls split per core;
    median of interleaved rounds. No batcher, no event loop: what batching could gain at best here."""
    classifier = OnnxClassifier(path, "cpu", threads=1)
    samples: dict[str, list[float]] = {}
    with ThreadPoolExecutor(max_workers=CORES) as pool:
        for _ in range(rounds):
            for batch in BATCHES:
                chunk = np.ascontiguousarray(np.resize(images, (max(1, batch // CORES), *images.shape[1:])))
                calls = max(1, requests // (len(chunk) * CORES))
                feed = {classifier.input_name: chunk}
                classifier.session.run(None, feed)  # first call of a shape allocates

                def work(_: int, feed: dict = feed, calls: int = calls) -> None:
                    for _ in range(calls):
                        classifier.session.run(None, feed)

                begin = time.perf_counter()
                list(pool.map(work, range(CORES)))
                samples.setdefault(f"batch{batch}", []).append(calls * len(chunk) * CORES / (time.perf_counter() - begin))
    return {key: round(float(np.median(values)), 1) for key, values in samples.items()}


if __name__ == "__main__":
    main()
