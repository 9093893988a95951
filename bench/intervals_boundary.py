"""Labeled accuracy intervals near 100 % (issue 29): coverage and width over a grid, ours against Wilson and Wald.

Grid: true accuracy 0.50, 0.80, 0.95, 0.99, 0.999; 30, 100 and 400 random-slice labels;
windows of 300 and 2,000 unlabeled predictions; the label-free estimator calibrated, broken
by the shift (over-confident) or uninformative (``shiftwatch.detectors.labeled_windows``).
Per cell, ``--trials`` seeded windows: how often each 95 % interval held the window's realized
accuracy, its mean width and how often it was a point. Ours: the prediction-powered (PPI++)
interval and the labels' exact interval (``detectors.intervals``); beside them Wilson on the
labels alone and the normal interval the product used before. Writes
bench/results/intervals_boundary.json.

    .venv/bin/python bench/intervals_boundary.py [--trials 400]
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import asdict

from machine import write_result

from shiftwatch.detectors.labeled_windows import LABEL_FREE, Cell, run

ACCURACIES = (0.5, 0.8, 0.95, 0.99, 0.999)
LABELS = (30, 100, 400)
WINDOWS = (300, 2000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    args = parser.parse_args()
    started = time.perf_counter()
    cells = []
    print(f"{'label-free':14} {'acc':>6} {'n':>4} {'N':>5} | {'PPI++ cov':>9} {'width':>7} | {'exact cov':>9} {'width':>7}"
          f" | {'Wilson cov':>10} {'width':>7} | {'Wald cov':>8} {'points':>6}")
    for label_free, accuracy, n, window in itertools.product(LABEL_FREE, ACCURACIES, LABELS, WINDOWS):
        cell = Cell(accuracy, n, window, label_free, args.trials)
        result = run(cell)
        cells.append({**asdict(cell), **asdict(result)})
        print(f"{label_free:14} {accuracy:>6} {n:>4} {window:>5} | {result.powered_coverage:>9.3f} {result.powered_mean_width:>7.4f}"
              f" | {result.labels_coverage:>9.3f} {result.labels_mean_width:>7.4f} | {result.wilson_coverage:>10.3f}"
              f" {result.wilson_mean_width:>7.4f} | {result.wald_coverage:>8.3f} {result.wald_zero_width:>6}")
    worst = {key: min(c[key] for c in cells) for key in ("powered_coverage", "labels_coverage", "wilson_coverage", "wald_coverage")}
    calibrated = [c for c in cells if c["label_free"] == "calibrated"]
    summary = {
        "worst_cell_coverage": worst,
        "zero_width_intervals": {
            "powered": sum(c["powered_zero_width"] for c in cells),
            "labels_exact": sum(c["labels_zero_width"] for c in cells),
            "wald": sum(c["wald_zero_width"] for c in cells),
        },
        # Width of PPI++ over the labels' own exact interval, and over Wilson's, where f is right.
        "calibrated_width_ratio_to_exact": round(
            sum(c["powered_mean_width"] / c["labels_mean_width"] for c in calibrated) / len(calibrated), 3),
        "calibrated_width_ratio_to_wilson": round(
            sum(c["powered_mean_width"] / c["wilson_mean_width"] for c in calibrated) / len(calibrated), 3),
    }
    write_result("intervals_boundary", {
        "benchmark": "intervals_boundary",
        "trials_per_cell": args.trials,
        "truth": "realized accuracy of the window (N unlabeled + n labeled predictions)",
        "summary": summary,
        "cells": cells,
        "seconds": round(time.perf_counter() - started, 1),
    }, headline=("summary",))


if __name__ == "__main__":
    main()
