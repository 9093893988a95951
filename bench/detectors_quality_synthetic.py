"""Quality on synthetic embedding shifts (issue 14): power and FPR per case and method, ours and peers in one run.

Cases: ``shiftwatch.detectors.synthetic`` (7 shifts, 4 nulls, 64-d and 512-d), windows of 200
and 1,000 samples per side, fixed seeds. Methods on the same windows:
- ``ours_default``: ``shiftwatch detect`` 's default ``auto`` (MMD over 5 bandwidths, max-T
  aggregated, plus per-feature KS, Bonferroni of two; the window-size effect rule): share of
  windows with ``drift: true``. ``ours_mmd_agg``: the MMD part alone (``--method mmd``).
- ``ours_before``: the previous default (one median bandwidth, drift only when the effect is at
  least 0.5 % of the kernel spread); ``ours_single_significant``: that test's p <= alpha.
- ``ours_ks``: KS on PCA components (``--method ks``).
- ``alibi_mmd`` / ``alibi_ks``: alibi-detect 0.13 MMDDrift (pytorch, 100 permutations) and KSDrift
  (per-feature KS, Bonferroni), in bench/.alibi-venv through bench/detectors_alibi_peer.py.
  MMDDrift takes ~20 s per 1,000-sample window here, so it runs on ALIBI_MMD_SEEDS of them.
- ``evidently_dataset``: Evidently 0.7's DataDriftPreset rule (its per-column default test,
  KS at 0.05 for these sizes, chosen by Evidently's own registry; dataset drift when at least
  half the columns drift); ``evidently_any_column``: any column drifted (no correction).
Power = share flagged on a shift case; FPR = share flagged on a null case. Writes
bench/results/detectors_quality_synthetic.json. Run: .venv/bin/python bench/detectors_quality.py --synthetic [--reuse-peers]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from shiftwatch.detectors.ks_pca import KSDetector
from shiftwatch.detectors.mmd import MMDDetector
from shiftwatch.detectors.omnibus import AutoDetector
from shiftwatch.detectors.synthetic import NULLS, SHIFTS

HERE = Path(__file__).resolve().parent
ALIBI_PYTHON = HERE / ".alibi-venv" / "bin" / "python"
OUT = HERE / "results" / "detectors_quality_synthetic.json"
ALPHA = 0.05
SIZES = (200, 1000)
SEEDS = 10  # power / FPR resolution 0.1 per case and size
ALIBI_MMD_SEEDS = {200: 10, 1000: 3}
PERMUTATIONS = 100
OLD_MIN_EFFECT = 0.5  # the previous default gate, % of reference kernel spread


def window_key(case: str, size: int, seed: int) -> str:
    return f"{case}__{size}__{seed}"


def evidently_flags(reference: np.ndarray, current: np.ndarray) -> tuple[bool, bool]:
    """Evidently's per-column default test (its registry picks it), dataset rule and any-column rule."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    drifted = 0
    for column in range(reference.shape[1]):
        ref, cur = pd.Series(reference[:, column]), pd.Series(current[:, column])
        test = get_stattest(ref, cur, ColumnType.Numerical, None)
        drifted += bool(test(ref, cur, ColumnType.Numerical, None).drifted)
    return drifted >= 0.5 * reference.shape[1], drifted > 0


def ours(reference: np.ndarray, current: np.ndarray) -> dict[str, bool]:
    default = AutoDetector(n_permutations=PERMUTATIONS).fit(reference).test(current)
    mmd = MMDDetector(n_permutations=PERMUTATIONS).fit(reference).test(current)
    single = MMDDetector(n_permutations=PERMUTATIONS, bandwidth_multipliers=(1.0,)).fit(reference).test(current)
    ks = KSDetector().fit(reference).test(current)
    dataset, any_column = evidently_flags(reference, current)
    return {
        "ours_default": bool(default.drift),
        "ours_mmd_agg": bool(mmd.drift),
        "ours_before": bool(single.significant and single.effect_size >= OLD_MIN_EFFECT),
        "ours_single_significant": bool(single.significant),
        "ours_ks": bool(ks.drift),
        "evidently_dataset": bool(dataset),
        "evidently_any_column": bool(any_column),
    }


def alibi(windows: dict[str, tuple[np.ndarray, np.ndarray]], mmd_keys: list[str]) -> dict:
    if not ALIBI_PYTHON.exists():
        return {"error": "bench/.alibi-venv missing: run bench/setup_alibi_venv.sh"}
    with tempfile.TemporaryDirectory() as tmp:
        arrays: dict[str, np.ndarray] = {"mmd_windows": np.array(mmd_keys)}
        for key, (reference, current) in windows.items():
            arrays[f"reference_{key}"], arrays[f"current_{key}"] = reference, current
        np.savez(Path(tmp) / "windows.npz", **arrays)
        done = subprocess.run(
            [str(ALIBI_PYTHON), str(HERE / "detectors_alibi_peer.py"), str(Path(tmp) / "windows.npz"),
             str(Path(tmp) / "out.json"), str(PERMUTATIONS)],
            capture_output=True, text=True, timeout=3600,
        )
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
        return json.loads((Path(tmp) / "out.json").read_text())


def rates(flags: dict[str, list[bool]]) -> dict[str, dict[str, float | int]]:
    return {method: {"rate": float(np.mean(values)), "trials": len(values)} for method, values in flags.items() if values}


def main() -> None:
    console = Console()
    started = time.perf_counter()
    windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    flags: dict[tuple[str, int], dict[str, list[bool]]] = {}
    for case in SHIFTS + NULLS:
        for size in SIZES:
            per_method: dict[str, list[bool]] = {}
            for seed in range(SEEDS):
                key = window_key(case.name, size, seed)
                windows[key] = case.windows(seed, size)
                for method, flag in ours(*windows[key]).items():
                    per_method.setdefault(method, []).append(flag)
            flags[(case.name, size)] = per_method
            console.print(f"{case.name} n={size}: ours done ({time.perf_counter() - started:.0f} s)")
    mmd_keys = [window_key(c.name, size, s) for c in SHIFTS + NULLS for size in SIZES for s in range(ALIBI_MMD_SEEDS[size])]
    # --reuse-peers: the peers' rates from the last run (same seeded windows; they do not depend on our code).
    previous = json.loads(OUT.read_text()) if "--reuse-peers" in sys.argv and OUT.exists() else None
    peer = {} if previous else alibi(windows, mmd_keys)
    for (case, size), per_method in flags.items():
        results = peer.get("windows", {})
        for seed in range(SEEDS):
            found = results.get(window_key(case, size, seed), {})
            for method in ("mmd", "ks"):
                if method in found:
                    per_method.setdefault(f"alibi_{method}", []).append(found[method]["drift"])

    table = Table(title=f"synthetic shifts: share of windows flagged (alpha {ALPHA}; nulls = FPR)")
    methods = ["ours_default", "ours_mmd_agg", "ours_before", "ours_single_significant", "ours_ks", "alibi_mmd", "alibi_ks", "evidently_dataset", "evidently_any_column"]
    for column in ("case", "n", *methods):
        table.add_column(column)
    out_cases: dict[str, dict] = {}
    for (case, size), per_method in flags.items():
        summary = rates(per_method)
        if previous:
            old = previous["cases"].get(case, {}).get(str(size), {})
            summary.update({m: v for m, v in old.items() if m.startswith("alibi_")})
        out_cases.setdefault(case, {})[str(size)] = summary
        table.add_row(case, str(size), *[f"{summary[m]['rate']:.2f}" if m in summary else "-" for m in methods])
    console.print(table)
    result = {
        "setup": {"alpha": ALPHA, "sizes": SIZES, "seeds": SEEDS, "alibi_mmd_seeds": ALIBI_MMD_SEEDS, "permutations": PERMUTATIONS,
                  "note": "2 cores shared with other jobs; power on shift cases, FPR on null cases"},
        "shifts": [c.name for c in SHIFTS],
        "nulls": [c.name for c in NULLS],
        "cases": out_cases,
        "alibi_error": previous.get("alibi_error") if previous else peer.get("error"),
        "peers_reused_from_previous_run": bool(previous),
        "seconds": time.perf_counter() - started,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
