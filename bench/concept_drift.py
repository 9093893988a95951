"""Pure concept drift (issue 31): labels a scheduled ``labeled_accuracy`` needs to alert, and its false-positive rate.

The inputs and confidences stay as they were; the label of one class is remapped for a share of
the traffic (0, 2, 5, 10, 20, 30 %), so the accuracy falls by about 0.9 x that share. Labels are
the uniform audit slice of 8 cameras whose right/wrong outcomes come in runs (lag-1
autocorrelation 0.3; ``detectors.concept_windows``); the reference has 3,000 of them at 90 %.
Each window goes through ``correctness.test``, the compute step of a scheduled run (the labels
gate, the fit, the test), with min_effect 5 points and alpha 0.05; a page is a significant
drop of at least min_effect (``_decide`` for a lone detector).

(1) Per share and window size (50 .. 3,200 labels), over ``--seeds`` windows: how often it
pages; the smallest window that pages in 80 % of them -- as the product runs it (below the labels
needed only a significant drop of at least min_effect pages), under a strict gate (nothing
decided below the labels needed) and for the bare test. (2) At share 0, windows of 20 .. 1,600 labels: the rate of pages over ``--null-seeds`` windows
(and of p <= alpha where every window is tested), with the cameras' context and with labels
counted as independent. (3) The input and output
detectors on the same traffic (``mmd`` on 16-d embeddings, ``bbsd`` on probabilities, drawn
alike in both windows because the concept, not the input, changed): their rate of drift at
alpha. Writes bench/results/concept_drift.json.

    .venv/bin/python bench/concept_drift.py [--seeds 100] [--null-seeds 400]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from machine import write_result

from shiftwatch.detectors import DETECTORS, correctness
from shiftwatch.detectors.concept_windows import Traffic, window
from shiftwatch.detectors.configs import ConfigSpec
from shiftwatch.detectors.effect import with_min_effect

ALPHA, MIN_EFFECT, REFERENCE_LABELS = 0.05, 5.0, 3000
SHARES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)
WINDOWS = (50, 100, 200, 400, 800, 1600, 3200)
NULL_WINDOWS = (20, 50, 100, 200, 400, 1600)
TRAFFIC = Traffic(accuracy=0.9, streams=8, stickiness=0.3)
CONFIG = ConfigSpec(id=1, model_version_id=1, name="labeled_accuracy", detector="labeled_accuracy", params={},
                    input="correctness", window_last_n=None, window_minutes=60, schedule_seconds=300, alpha=ALPHA,
                    min_effect=MIN_EFFECT, confirm_runs=1)  # fmt: skip
NO_GATE = replace(CONFIG, params={"min_effect_size": MIN_EFFECT})


def one_window(share: float, n: int, seed: int, independent: bool = False) -> dict[str, bool]:
    """One seeded reference and window through the scheduled compute step: tested, significant, paged; and the test alone."""
    rng = np.random.default_rng(seed)
    reference, current = window(TRAFFIC, REFERENCE_LABELS, rng), window(TRAFFIC, n, rng, remap_share=share)
    if independent:  # every label its own camera
        reference, current = (replace(o, stream_ids=[str(i) for i in range(len(o))]) for o in (reference, current))
    outcome = correctness.test(CONFIG, DETECTORS, reference, current)
    result = outcome.result
    paged = result is not None and result.p_value <= ALPHA and with_min_effect(result, MIN_EFFECT).drift
    needed = correctness.labels_needed(float(reference.correct.mean()), reference.n_effective(), MIN_EFFECT, ALPHA)
    enough = needed is not None and current.n_effective() >= needed
    alone = DETECTORS["labeled_accuracy"](min_effect_size=MIN_EFFECT).fit(reference.correct, stream_ids=reference.stream_ids,
                                                                          timestamps=reference.timestamps)  # fmt: skip
    bare = alone.test(current.correct, stream_ids=current.stream_ids, timestamps=current.timestamps)
    return {"tested": result is not None, "significant": result is not None and result.p_value <= ALPHA,
            "paged": paged, "strict_gate": paged and enough, "test_alone": bool(bare.p_value <= ALPHA and bare.drift)}  # fmt: skip


def labels_to_alert(rates: dict[int, float], power: float = 0.8) -> int | None:
    return next((n for n in WINDOWS if rates[n] >= power), None)


def input_detectors(seeds: int) -> dict[str, float]:
    """Rate of drift of ``mmd`` and ``bbsd`` on inputs and outputs drawn alike (the concept moved, not they)."""
    flagged = {"mmd": 0, "bbsd": 0}
    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        embeddings = [rng.normal(0.0, 1.0, (400, 16)) for _ in range(2)]
        probabilities = [rng.dirichlet(np.ones(4), 400) for _ in range(2)]
        mmd = DETECTORS["mmd"](n_permutations=99, seed=seed).fit(embeddings[0]).test(embeddings[1])
        bbsd = DETECTORS["bbsd"]().fit(probabilities[0]).test(probabilities[1])
        flagged["mmd"] += bool(mmd.drift)
        flagged["bbsd"] += bool(bbsd.drift)
    return {name: count / seeds for name, count in flagged.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--null-seeds", type=int, default=400)
    parser.add_argument("--input-seeds", type=int, default=100)
    args = parser.parse_args()
    started = time.perf_counter()
    shares = []
    print(f"{'share':>6} {'drop':>5} | " + " ".join(f"{n:>5}" for n in WINDOWS) + " | labels to alert: product / strict gate / test alone")
    for share in SHARES[1:]:
        runs = {n: [one_window(share, n, seed) for seed in range(args.seeds)] for n in WINDOWS}
        paged = {n: float(np.mean([r["paged"] for r in runs[n]])) for n in WINDOWS}
        alone = {n: float(np.mean([r["test_alone"] for r in runs[n]])) for n in WINDOWS}
        strict = {n: float(np.mean([r["strict_gate"] for r in runs[n]])) for n in WINDOWS}
        tested = {n: float(np.mean([r["tested"] for r in runs[n]])) for n in WINDOWS}
        row = {"remap_share": share, "accuracy_drop_points": round(100 * TRAFFIC.accuracy * share, 1), "page_rate": paged,
               "tested_rate": tested, "test_alone_rate": alone, "strict_gate_rate": strict,
               "labels_to_alert_80": labels_to_alert(paged), "labels_to_alert_80_test_alone": labels_to_alert(alone),
               "labels_to_alert_80_strict_gate": labels_to_alert(strict)}  # fmt: skip
        shares.append(row)
        print(f"{share:>6} {row['accuracy_drop_points']:>5} | " + " ".join(f"{paged[n]:>5.2f}" for n in WINDOWS)
              + f" | {row['labels_to_alert_80']} / {row['labels_to_alert_80_strict_gate']} / {row['labels_to_alert_80_test_alone']}")
    null: dict[str, dict[str, object]] = {}
    for independent in (False, True):
        by_size = {}
        for n in NULL_WINDOWS:
            runs_null = [one_window(0.0, n, seed, independent) for seed in range(args.null_seeds)]
            tested_null = [r for r in runs_null if r["tested"]]
            by_size[n] = {"page_rate": float(np.mean([r["paged"] for r in runs_null])), "tested": len(tested_null),
                          # only where every window is tested (past the labels needed) is this the test's size
                          "significant_rate_when_tested": float(np.mean([r["significant"] for r in tested_null])) if tested_null else None}  # fmt: skip
        null["labels_counted_as_independent" if independent else "with_cameras"] = by_size
        print(("counted as independent" if independent else "with cameras") + ", unchanged labels, page rate: "
              + ", ".join(f"{n}: {v['page_rate']:.3f}" for n, v in by_size.items()))
    inputs = input_detectors(args.input_seeds)
    print(f"input/output detectors on the same traffic, rate of drift: {inputs}")
    gate = correctness.labels_needed(TRAFFIC.accuracy, window(TRAFFIC, REFERENCE_LABELS, np.random.default_rng(0)).n_effective(),
                                     MIN_EFFECT, ALPHA)  # fmt: skip
    write_result("concept_drift", {
        "benchmark": "concept_drift",
        "setup": {"reference_labels": REFERENCE_LABELS, "accuracy": TRAFFIC.accuracy, "cameras": TRAFFIC.streams,
                  "stickiness": TRAFFIC.stickiness, "alpha": ALPHA, "min_effect_points": MIN_EFFECT,
                  "seeds_per_cell": args.seeds, "null_seeds": args.null_seeds, "input_seeds": args.input_seeds},
        "gate_labels_needed_effective": gate,
        "shares": shares,
        "unchanged_labels": null,
        "input_output_detectors_drift_rate": inputs,
        "seconds": round(time.perf_counter() - started, 1),
    }, headline=("gate_labels_needed_effective", "unchanged_labels", "input_output_detectors_drift_rate"))  # fmt: skip


if __name__ == "__main__":
    main()
