"""Power on a small far contamination (issue 24): 5 % of 200 samples of 512-d, ours and alibi-detect's MMD on the same windows.

Windows: ``shiftwatch.detectors.synthetic``'s contamination case at 512 dimensions and 200
samples per side (10 current samples from a cluster far from every reference class), and the
same mixture with no change for the false-positive rate; SEEDS seeded windows each.
Methods, 100 permutations each: ``auto`` (the default: MMD-Agg + per-feature KS, Bonferroni
of two), ``mmd`` (MMD-Agg alone, kernels from the reference since issue 24), ``mmd_before``
(kernels from reference + current, commit 86d19f8, loaded from git), and alibi-detect 0.13
``MMDDrift`` (one median bandwidth; bench/.alibi-venv, bench/setup_alibi_venv.sh).
Writes bench/results/contamination_power.json. Run: .venv/bin/python bench/contamination_power.py
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

from shiftwatch.detectors.mmd import MMDDetector
from shiftwatch.detectors.omnibus import AutoDetector
from shiftwatch.detectors.synthetic import _contamination, _null

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from detectors_quality_synthetic import alibi  # noqa: E402
from machine import machine_facts  # noqa: E402

OUT = HERE / "results" / "contamination_power.json"
BEFORE_COMMIT = "86d19f8"
ALPHA = 0.05
DIMS, SIZE, SEEDS, PERMUTATIONS = 512, 200, 30, 100
CASES = {"contamination_5pct_far": _contamination, "null": _null}


def mmd_before() -> type:
    """The MMD module as it was before issue 24 (bandwidths from reference + current), from git."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE_COMMIT}:detectors/mmd.py"], cwd=HERE.parent, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "mmd_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("mmd_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MMDDetector


def main() -> None:
    before = mmd_before()
    started = time.perf_counter()
    windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    flags: dict[str, dict[str, list[bool]]] = {}
    for case, make in CASES.items():
        for seed in range(SEEDS):
            reference, current = (a.astype(np.float32) for a in make(DIMS, SIZE, np.random.default_rng([DIMS, seed])))
            windows[f"{case}__{seed}"] = (reference, current)
            ours = {
                "auto": AutoDetector(n_permutations=PERMUTATIONS, seed=seed).fit(reference).test(current).drift,
                "mmd": MMDDetector(n_permutations=PERMUTATIONS, seed=seed).fit(reference).test(current).drift,
                "mmd_before": before(n_permutations=PERMUTATIONS, seed=seed).fit(reference).test(current).drift,
            }
            for name, flag in ours.items():
                flags.setdefault(case, {}).setdefault(name, []).append(bool(flag))
    peer = alibi(windows, list(windows))
    if "error" not in peer:
        for key, found in peer["windows"].items():
            flags[key.split("__")[0]].setdefault("alibi_mmd", []).append(bool(found["mmd"]["drift"]))
    rates = {case: {name: float(np.mean(v)) for name, v in cell.items()} for case, cell in flags.items()}
    results = {
        "rates": rates,
        "windows_per_case": SEEDS,
        "fpr_upper_95_bound_at_alpha": float(stats.binom.ppf(0.975, SEEDS, ALPHA) / SEEDS),
        "alibi_error": peer.get("error"),
        "setup": {"dims": DIMS, "size": SIZE, "permutations": PERMUTATIONS, "alpha": ALPHA, "seconds": time.perf_counter() - started,
                  "machine": machine_facts()},
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(rates))


if __name__ == "__main__":
    main()
