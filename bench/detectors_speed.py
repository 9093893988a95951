"""Speed of our MMD test against alibi-detect's MMDDrift (same data, same run), Evidently's drift preset, and memory.

(a) 2,000 vs 2,000 samples of 128-d, 100 permutations, several shift cases: seconds per test
(fit + test, median of repeats for ours: the default 5-bandwidth aggregated test, and the old
single-bandwidth test as a peer in the same run) and whether ours and alibi-detect reach the
same significance decision at alpha 0.05 (alibi-detect on ALIBI_CASES only: ~60 s each).
alibi-detect runs in its own venv (bench/.alibi-venv, made by bench/setup_alibi_venv.sh)
through bench/alibi_mmd_peer.py. (b) Evidently 0.7's DataDriftPreset on the same data (its
dataset-drift decision: at least half the columns drifted). (c) Peak memory of testing a
50,000 x 512 current window, in a fresh process (tracemalloc peak and max RSS growth).

Writes bench/results/detectors_speed.json.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ALIBI_PYTHON = HERE / ".alibi-venv" / "bin" / "python"
N, D, PERMUTATIONS = 2000, 128, 100
REPEATS = 3
EVIDENTLY_CASES = ("no_change",)  # one Evidently run takes ~30 s on this machine
# alibi-detect takes ~60 s per case here: three cases keep the bench near three minutes.
ALIBI_CASES = ("no_change", "mean_shift_0.10", "10%_outliers")


def make_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(N, D)).astype(np.float32)
    fresh = lambda: rng.normal(size=(N, D)).astype(np.float32)
    cases = {"no_change": (reference, fresh()), "no_change_2": (reference, fresh())}
    cases["mean_shift_0.02"] = (reference, fresh() + 0.02)
    cases["mean_shift_0.10"] = (reference, fresh() + 0.10)
    few = fresh()
    few[:, :8] += 0.3
    cases["8_dims_shift_0.3"] = (reference, few)
    cases["variance_x1.1"] = (reference, fresh() * 1.1)
    mixed = fresh()
    mixed[: N // 10] += 1.0
    cases["10%_outliers"] = (reference, mixed)
    return cases


def timed(detector_args: dict, reference: np.ndarray, current: np.ndarray, omnibus: bool = False):
    """Median seconds of fit + test over REPEATS, and the last result (MMD, or the ``auto`` omnibus)."""
    from shiftwatch.detectors.mmd import MMDDetector
    from shiftwatch.detectors.omnibus import AutoDetector

    cls = AutoDetector if omnibus else MMDDetector
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = cls(n_permutations=PERMUTATIONS, **detector_args).fit(reference).test(current)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def ours(cases: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    """The default (5 bandwidths, min-p aggregated) and, as a peer in the same run, the old single bandwidth."""
    out = {}
    for name, (reference, current) in cases.items():
        seconds, result = timed({}, reference, current)
        single_seconds, single = timed({"bandwidth_multipliers": (1.0,)}, reference, current)
        auto_seconds, auto = timed({}, reference, current, omnibus=True)
        out[name] = {
            "seconds": seconds,
            "p_value": result.p_value,
            "significant": result.significant,
            "drift": result.drift,
            "severity": result.severity,
            "statistic": result.statistic,
            "effect_size": result.effect_size,
            "single_bandwidth_seconds": single_seconds,
            "single_bandwidth_p_value": single.p_value,
            "auto_seconds": auto_seconds,
            "auto_p_value": auto.p_value,
        }
    return out


def alibi(cases: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    if not ALIBI_PYTHON.exists():
        return {"error": "bench/.alibi-venv missing: run bench/setup_alibi_venv.sh"}
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {}
        for name in ALIBI_CASES:
            arrays[f"reference_{name}"], arrays[f"current_{name}"] = cases[name]
        np.savez(Path(tmp) / "cases.npz", **arrays)
        done = subprocess.run(
            [str(ALIBI_PYTHON), str(HERE / "alibi_mmd_peer.py"), str(Path(tmp) / "cases.npz"), str(Path(tmp) / "out.json"), str(PERMUTATIONS)],
            capture_output=True, text=True, timeout=1200,
        )
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
        return json.loads((Path(tmp) / "out.json").read_text())


def evidently(cases: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    out = {}
    columns = [f"e{i}" for i in range(D)]
    for name in EVIDENTLY_CASES:
        reference, current = cases[name]
        start = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(
            current_data=pd.DataFrame(current, columns=columns), reference_data=pd.DataFrame(reference, columns=columns)
        )
        seconds = time.perf_counter() - start
        share = snapshot.dict()["metrics"][0]["value"]["share"]
        out[name] = {"seconds": seconds, "drifted_column_share": share, "drift": share >= 0.5}
    return out


def memory_probe() -> None:
    """Child-process mode: test one 50,000 x 512 window and print peak memory as JSON."""
    from shiftwatch.detectors.mmd import MMDDetector

    rng = np.random.default_rng(1)
    reference = rng.normal(size=(5000, 512)).astype(np.float32)
    current = rng.normal(size=(50_000, 512)).astype(np.float32)
    detector = MMDDetector().fit(reference)  # defaults: 500 permutations, 2,000 per window
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    result = detector.test(current)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "window": [50_000, 512],
        "seconds": seconds,
        "tracemalloc_peak_mb": peak / 2**20,
        "max_rss_mb": rss_after / 1024,
        "max_rss_growth_mb": (rss_after - rss_before) / 1024,
        "input_window_mb": current.nbytes / 2**20,
        "n_current_tested": result.evidence["n_current_tested"],
        "evidence_covers_whole_window": True,
    }))


def memory() -> dict:
    done = subprocess.run([sys.executable, __file__, "--memory-probe"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    console = Console()
    cases = make_cases()
    with console.status("our MMD ..."):
        mine = ours(cases)
    with console.status("alibi-detect MMDDrift (own venv) ..."):
        peer = alibi(cases)
    with console.status("Evidently DataDriftPreset ..."):
        evid = evidently(cases)
    with console.status("memory of a 50,000 x 512 window ..."):
        mem = memory()

    table = Table(title=f"MMD, {N} vs {N} x {D}-d, {PERMUTATIONS} permutations")
    for column in ("case", "ours s", "1-bw s", "alibi s", "speed-up", "ours p", "alibi p", "same decision", "Evidently s"):
        table.add_column(column)
    peer_cases = peer.get("cases", {})
    agree, ratios = [], []
    for name, result in mine.items():
        other = peer_cases.get(name)
        ratio = other["seconds"] / result["seconds"] if other else None
        same = other["drift"] == result["significant"] if other else None
        if other:
            ratios.append(ratio)
            agree.append(same)
        table.add_row(
            name, f"{result['seconds']:.3f}", f"{result['single_bandwidth_seconds']:.3f}", f"{other['seconds']:.2f}" if other else "-", f"{ratio:.1f}x" if ratio else "-",
            f"{result['p_value']:.3f}", f"{other['p_value']:.3f}" if other else "-", str(same) if other else "-",
            f"{evid[name]['seconds']:.1f}" if name in evid else "",
        )
    console.print(table)
    summary = {
        "median_speedup_vs_alibi": float(np.median(ratios)) if ratios else None,
        "min_speedup_vs_alibi": float(np.min(ratios)) if ratios else None,
        "decisions_agree": f"{sum(agree)}/{len(agree)}" if agree else None,
        "median_auto_speedup_vs_alibi": float(np.median(
            [peer_cases[n]["seconds"] / mine[n]["auto_seconds"] for n in peer_cases if n in mine]
        )) if peer_cases else None,
        "median_cost_vs_single_bandwidth": float(
            np.median([r["seconds"] / r["single_bandwidth_seconds"] for r in mine.values()])
        ),
        "evidently_median_seconds": float(np.median([v["seconds"] for v in evid.values()])),
        "memory_50000x512_tracemalloc_peak_mb": mem.get("tracemalloc_peak_mb"),
        "memory_50000x512_max_rss_mb": mem.get("max_rss_mb"),
    }
    console.print(summary)
    result = {
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(), "note": "2 cores shared with other jobs"},
        "setup": {"n": N, "d": D, "permutations": PERMUTATIONS, "repeats_ours": REPEATS, "alpha": 0.05},
        "summary": summary,
        "ours": mine,
        "alibi_detect": peer,
        "evidently": evid,
        "memory": mem,
    }
    out = HERE / "results" / "detectors_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    if "--memory-probe" in sys.argv:
        memory_probe()
    else:
        main()
