"""Domain-classifier test before and after issue 24 on the same windows: false-positive rate and power.

Before: out-of-fold AUC pooled over 3 folds, labels permuted within folds without refitting
(commit 86d19f8, loaded from git). After: each of 2 folds' AUC tested on samples its model
never saw (an exact permutation test per fold), Bonferroni over folds. Both at 30 trees and
99 permutations, the quality suite's settings.
- Nulls: the synthetic null shapes (mixture 64-d and 512-d, heavy tails, L2-normalised) at
  windows of 200 and 500 per side, 25 seeds each: 200 windows.
- Power: the synthetic shifts of issue 14 at their window sizes (bench/detectors_quality_synthetic.py).
- ``--digits`` adds the digits suite of bench/detectors_quality.py (it trains two CNNs first):
  80 unshifted windows of 500 and the weakest severities (1, 2) of every shift, 5 windows each.
Writes bench/results/classifier_calibration.json. Run: .venv/bin/python bench/classifier_calibration.py [--digits]
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.progress import Progress
from scipy import stats

from shiftwatch.detectors.classifier import ClassifierDetector
from shiftwatch.detectors.synthetic import NULLS, SHIFTS

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from detectors_quality import REFERENCE_SIZE, build_scenarios  # noqa: E402
from machine import machine_facts  # noqa: E402

OUT = HERE / "results" / "classifier_calibration.json"
BEFORE_COMMIT = "86d19f8"
ALPHA = 0.05
SETTINGS = {"n_permutations": 99, "n_trees": 30}
NULL_SIZES = (200, 500)
NULL_SEEDS = 25  # per synthetic null shape and size: 4 x 2 x 25 = 200
DIGITS_NULLS = 80
POWER_TRIALS = 5  # digits windows per shift and severity
SYNTHETIC_TRIALS = 10
SEVERITIES = (1, 2)


def before_detector() -> type:
    """The classifier module as it was before issue 24, from git."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE_COMMIT}:detectors/classifier.py"], cwd=HERE.parent, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "classifier_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("classifier_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ClassifierDetector


Flags = dict[str, dict[str, list[bool]]]


def flags(detectors: dict, reference: np.ndarray, current: np.ndarray) -> dict[str, bool]:
    return {name: bool(make().fit(reference).test(current).p_value <= ALPHA) for name, make in detectors.items()}


def record(table: Flags, key: str, outcome: dict[str, bool]) -> None:
    for name, flag in outcome.items():
        table.setdefault(key, {}).setdefault(name, []).append(flag)


def synthetic_suite(progress: Progress, detectors: dict, nulls: Flags, power: Flags) -> None:
    task = progress.add_task("synthetic windows", total=len(NULLS) * len(NULL_SIZES) * NULL_SEEDS + len(SHIFTS) * SYNTHETIC_TRIALS)
    for case in NULLS:
        for size in NULL_SIZES:
            for seed in range(NULL_SEEDS):
                record(nulls, f"synthetic/{case.name}/{size}", flags(detectors, *case.windows(seed, n=size)))
                progress.advance(task)
    for case in SHIFTS:
        for seed in range(SYNTHETIC_TRIALS):
            record(power, f"synthetic/{case.name}/{case.n}", flags(detectors, *case.windows(seed)))
            progress.advance(task)


def digits_suite(progress: Progress, detectors: dict, nulls: Flags, power: Flags) -> None:
    """Unshifted digits windows and the weakest severities of every digits shift, window 500."""
    scenarios, references = build_scenarios(np.random.default_rng(0), progress)
    shifted = [key for key in scenarios if key[1] in SEVERITIES]
    task = progress.add_task("digits windows", total=DIGITS_NULLS + len(shifted) * POWER_TRIALS)
    for trial in range(DIGITS_NULLS):
        window = scenarios[("none", 0)](500, np.random.default_rng(10_000 + trial))
        record(nulls, "digits/500", flags(detectors, references["default"][0], window[0]))
        progress.advance(task)
    for number, key in enumerate(scenarios):
        if key not in shifted:
            continue
        reference = references["unseen" if key[0] == "unseen_class" else "default"][0]
        for trial in range(POWER_TRIALS):
            window = scenarios[key](500, np.random.default_rng([number, 500, trial]))
            record(power, f"digits/{key[0]}/{key[1]}", flags(detectors, reference, window[0]))
            progress.advance(task)


def main(digits: bool) -> None:
    before = before_detector()
    detectors: dict[str, Callable] = {
        "before": lambda: before(n_folds=3, **SETTINGS),
        "after": lambda: ClassifierDetector(n_folds=2, **SETTINGS),
    }
    started = time.perf_counter()
    nulls: Flags = {}
    power: Flags = {}
    with Progress(transient=True) as progress:
        synthetic_suite(progress, detectors, nulls, power)
        if digits:
            digits_suite(progress, detectors, nulls, power)

    pooled = {name: [f for cell in nulls.values() for f in cell[name]] for name in detectors}
    bound = float(stats.binom.ppf(0.975, len(pooled["after"]), ALPHA) / len(pooled["after"]))
    results = {
        "alpha": ALPHA,
        "null_windows": len(pooled["after"]),
        "fpr_upper_95_bound_at_alpha": bound,
        "fpr_pooled": {name: float(np.mean(v)) for name, v in pooled.items()},
        "fpr": {key: {name: float(np.mean(v)) for name, v in cell.items()} for key, cell in nulls.items()},
        "power": {key: {name: float(np.mean(v)) for name, v in cell.items()} for key, cell in power.items()},
        "setup": {
            "settings": SETTINGS, "digits": digits, "before": f"{BEFORE_COMMIT}, 3 folds, pooled AUC",
            "after": "2 folds, per-fold exact, Bonferroni", "reference_size_digits": REFERENCE_SIZE,
            "seconds": time.perf_counter() - started, "machine": machine_facts(),
        },
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: results[k] for k in ("null_windows", "fpr_upper_95_bound_at_alpha", "fpr_pooled")}))
    for key, cell in results["power"].items():
        print(f"{key:55s} before {cell['before']:.1f}  after {cell['after']:.1f}")


if __name__ == "__main__":
    main("--digits" in sys.argv)
