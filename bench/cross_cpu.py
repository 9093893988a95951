"""Cross-CPU reproducibility: the default compression recipe's accuracy over seeds and ISA levels.

Float results of training differ between CPUs because oneDNN and MKL pick other kernels per
instruction set, so one seed on one machine says little about the next machine. This runs
the reference CNN and the default artifact (distill + prune + int8) for several seeds, once
per ISA level (a child process each, with oneDNN and MKL capped by ``ONEDNN_MAX_CPU_ISA`` and
``MKL_ENABLE_INSTRUCTIONS``), and reports the spread of the top-1 cost of compression and of
the int8 agreement, and what 7-bit weights (``reduce_range``) cost against 8-bit ones on the
same fp32 model. ONNX Runtime's own kernels cannot be capped this way (MLAS reads CPUID).
Writes bench/results/cross_cpu.json.

    python bench/cross_cpu.py [--seeds 3] [--isa default,AVX2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import track

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine_facts

console = Console(width=120)
ISA_ENV = {"default": {}, "AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
           "AVX512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_ENABLE_INSTRUCTIONS": "AVX512"}}  # fmt: skip


def one_seed(seed: int) -> dict:
    """Child process: train the reference with ``seed``, compress with the defaults, score on test."""
    import torch

    from shiftwatch.examples.digits import split_digits
    from shiftwatch.examples.digits_cnn import family, train_reference
    from shiftwatch.retrain.compress import CompressConfig, compress, onnx_accuracy
    from shiftwatch.retrain.export import export_onnx
    from shiftwatch.retrain.quantize import QuantizeConfig, quantize_int8
    from shiftwatch.retrain.trainer import TrainConfig, accuracy

    torch.set_num_threads(1)
    splits = split_digits(0)
    started = time.monotonic()
    model = train_reference(seed)
    reference = accuracy(model, splits.test.images, splits.test.labels)
    work = Path(tempfile.mkdtemp(prefix="shiftwatch-xcpu-"))
    result = compress(
        model, splits.train.images, splits.train.labels, splits.val.images, splits.val.labels,
        splits.train.images, work, TrainConfig(seed=seed), CompressConfig(), family=family(),
    )  # fmt: skip
    compressed = onnx_accuracy(result.path, splits.test.images, splits.test.labels)
    # The same fp32 model quantized with 8-bit weights: what reduce_range costs on this CPU.
    raw = export_onnx(result.model, work / "again.raw.onnx")
    ranges = {
        name: onnx_accuracy(quantize_int8(raw, work / f"{name}.onnx", splits.train.images, QuantizeConfig(reduce_range=rr)),
                            splits.test.images, splits.test.labels)
        for name, rr in (("int8_7bit_weights", True), ("int8_8bit_weights", False))
    }  # fmt: skip
    return {
        "reduce_range_cost_points": round(100 * (ranges["int8_8bit_weights"] - ranges["int8_7bit_weights"]), 2),
        **{f"{name}_top1": round(value, 4) for name, value in ranges.items()},
        "seed": seed,
        "reference_top1": round(reference, 4),
        "default_top1": round(compressed, 4),
        "delta_points": round(100 * (compressed - reference), 2),
        "steps_applied": list(result.steps_applied),
        "quantization": result.details.get("quantization"),
        "seconds": round(time.monotonic() - started, 1),
    }


def summarize(rows: list[dict]) -> dict:
    deltas = [row["delta_points"] for row in rows]
    agreements = [row["quantization"]["attempts"][-1]["top1_agreement"] for row in rows if row["quantization"]]
    return {
        "delta_points_mean": round(sum(deltas) / len(deltas), 2),
        "delta_points_worst": min(deltas),
        "delta_points_best": max(deltas),
        "int8_agreement_min": min(agreements) if agreements else None,
        "int8_shipped": sum(1 for row in rows if "ptq" in row["steps_applied"]),
        "reduce_range_cost_points_mean": round(sum(r["reduce_range_cost_points"] for r in rows) / len(rows), 2),
        "runs": len(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--isa", default="default,AVX2", help=f"comma-separated, of {', '.join(ISA_ENV)}")
    parser.add_argument("--child-seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_seed is not None:
        print(json.dumps(one_seed(args.child_seed)))
        return
    levels = [level.strip() for level in args.isa.split(",") if level.strip()]
    unknown = sorted(set(levels) - set(ISA_ENV))
    if unknown:
        parser.error(f"unknown ISA level {', '.join(unknown)}; known: {', '.join(ISA_ENV)}")
    results: dict[str, list[dict]] = {}
    jobs = [(level, seed) for level in levels for seed in range(args.seeds)]
    for level, seed in track(jobs, description="training and compressing", console=console):
        env = {**os.environ, **ISA_ENV[level]}
        out = subprocess.run([sys.executable, __file__, "--child-seed", str(seed)], env=env, check=True,
                             capture_output=True, text=True)  # fmt: skip
        row = json.loads(out.stdout.strip().splitlines()[-1])
        results.setdefault(level, []).append(row)
        console.print(f"{level} seed {seed}: {row['delta_points']:+.2f} points, steps {row['steps_applied']}, {row['seconds']} s")
    summary = {level: summarize(rows) for level, rows in results.items()}
    for level, values in summary.items():
        console.print(f"{level}: {values}")
    out_path = Path(__file__).parent / "results" / "cross_cpu.json"
    out_path.write_text(json.dumps({
        "benchmark": "cross_cpu", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(), "isa_env": {level: ISA_ENV[level] for level in levels},
        "summary": summary, "rows": results,
    }, indent=2) + "\n")  # fmt: skip
    console.print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
