"""Label-free accuracy estimators and the labeled interval on a real image model: coverage first, then error (issue 24).

Model: the project's digits CNN (shiftwatch.examples.digits_cnn, trained from its seed in
seconds on scikit-learn's bundled digits; no download). The reference is the CNN's output on
the held-out val + test images with their labels; windows of 500 are drawn from the same
images (the no-shift case is a fresh draw of the reference's population), corrupted per family
and severity 3 and 5: gaussian and impulse noise, blur, brightness, contrast, rotation, JPEG,
rescaling; label shift (class 0 at 25, 45, 65 %); new content (a CNN trained without class 9,
class 9 at 10, 30, 50 % of the window).

Per window: every estimator's point (CBPE, ATC, DoC, average confidence) with its 95 %
bootstrap interval, the default's interval widened by the others (``detectors.label_free``),
whether the reliability check flags it, and the prediction-powered interval from 100 random
labels of the window (the per-sample CBPE as the predictor) beside the labels' exact interval, and
the interval of a weighted draw of about 100 (``intervals.weighted_draw``: half uniform, half where
CBPE is least sure; what ``shiftwatch labeling audit`` draws where the label-free estimate is reliable).
The labeled intervals are cheap, so they get their own, larger count of windows per case
(``--labeled-trials``, default 300), enough to tell 0.93 coverage from 0.95. Truth is the window's
realized accuracy.

Why PPI is not narrower: its variance over the labels' alone is 1 - R^2 * N/(N + n), R^2 the
squared correlation of the predictor with each sample's correctness. Per case the bench measures
that R^2 on the case's bank for CBPE's per-sample P(correct) and for the best linear mix of it with
the margin, the entropy and the log of one minus the confidence, fitted in-sample on the bank (an
upper bound), and writes the width ratio each allows. A case is *calibrated* when the reference's
calibration map holds on its image bank (|CBPE - accuracy| of the whole bank <= 2 points,
measured with the bank's labels). Writes bench/results/accuracy_estimators.json.

    .venv/bin/python bench/accuracy_estimators.py [--trials 20]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from detectors_quality import Outputs, model_without
from machine import write_result

from shiftwatch.detectors import label_free
from shiftwatch.detectors.accuracy import AccuracyEstimator
from shiftwatch.detectors.intervals import (
    prediction_powered_accuracy,
    proportion_interval,
    weighted_accuracy,
    weighted_draw,
)
from shiftwatch.examples import digits
from shiftwatch.examples.digits_cnn import train_reference

WINDOW = 500
LABELS = 100
BANK = 1000
CORRUPTIONS = ("gaussian_noise", "impulse_noise", "blur", "brightness", "contrast", "rotation", "jpeg", "rescale")
SEVERITIES = (3, 5)  # of the corruptions: a shift that costs little, one that costs much
LABEL_SHIFT_SHARE = {1: 0.25, 3: 0.45, 5: 0.65}
UNSEEN_SHARE = {2: 0.1, 4: 0.3, 5: 0.5}
UNSEEN_CLASS = 9
METHODS = ("cbpe", "atc", "doc", "confidence")
CALIBRATED_POINTS = 2.0
Window = tuple[np.ndarray, np.ndarray]  # probabilities, labels


def scenarios(rng: np.random.Generator) -> tuple[dict[str, Callable[[np.random.Generator], Window]], dict[str, Window], dict[str, Window]]:
    """Per case: a window sampler; the two references (full CNN, CNN without class 9); each case's whole bank."""
    splits = digits.split_digits(0)
    # The reference is every held-out image (val + test); windows draw from the same images, corrupted
    # per case. Disjoint halves (~300 images each) differed by 3 points of accuracy by chance alone.
    ref_images = np.concatenate([splits.val.images, splits.test.images])
    ref_labels = np.concatenate([splits.val.labels, splits.test.labels])
    pool_images, pool_labels = ref_images, ref_labels
    model, blind = train_reference(seed=0), model_without(UNSEEN_CLASS)
    reference = Outputs(model, ref_images, ref_labels)
    seen_ref = ref_labels != UNSEEN_CLASS
    blind_reference = Outputs(blind, ref_images[seen_ref], ref_labels[seen_ref])
    samplers: dict[str, Callable[[np.random.Generator], Window]] = {}
    banks: dict[str, Window] = {}

    def from_bank(bank: Outputs) -> Callable[[np.random.Generator], Window]:
        return lambda r: (lambda i: (bank.probs[i], bank.labels[i]))(r.integers(0, len(bank.labels), WINDOW))

    clean = Outputs(model, pool_images, pool_labels)
    samplers["none/0"], banks["none/0"] = from_bank(clean), (clean.probs, clean.labels)
    for name in CORRUPTIONS:
        for severity in SEVERITIES:
            draw = rng.integers(0, len(pool_labels), BANK)
            bank = Outputs(model, digits.corrupt(pool_images[draw], name, severity, rng), pool_labels[draw])
            samplers[f"{name}/{severity}"], banks[f"{name}/{severity}"] = from_bank(bank), (bank.probs, bank.labels)
    for severity, share in LABEL_SHIFT_SHARE.items():
        weights = np.full(10, (1 - share) / 9)
        weights[0] = share
        index = digits.label_shift_indices(pool_labels, weights, 20 * WINDOW, rng)
        samplers[f"label_shift/{severity}"] = (lambda w: lambda r: (lambda i: (clean.probs[i], clean.labels[i]))(
            digits.label_shift_indices(pool_labels, w, WINDOW, r)))(weights)
        banks[f"label_shift/{severity}"] = (clean.probs[index], clean.labels[index])
    blind_pool = Outputs(blind, pool_images, pool_labels)
    seen, unseen = digits.hold_out_class(pool_labels, UNSEEN_CLASS)
    for severity, share in UNSEEN_SHARE.items():
        def sample(r: np.random.Generator, share: float = share) -> Window:
            k = r.binomial(WINDOW, share)
            i = r.permutation(np.r_[r.choice(seen, WINDOW - k), r.choice(unseen, k)])
            return blind_pool.probs[i], blind_pool.labels[i]
        samplers[f"unseen_class/{severity}"] = sample
        banks[f"unseen_class/{severity}"] = _big(sample, share)
    references = {"default": (reference.probs, reference.labels), "unseen": (blind_reference.probs, blind_reference.labels)}
    return samplers, references, banks


def _big(sample: Callable[..., Window], share: float) -> Window:
    """Twenty windows of a sampler pooled: the case's population for the calibrated/broken verdict."""
    parts = [sample(np.random.default_rng(90_000 + k), share) for k in range(20)]
    return np.concatenate([p for p, _ in parts]), np.concatenate([y for _, y in parts])


def one_window(reference: Window, window: Window, rng: np.random.Generator) -> dict:
    """Every estimator on one window, the default's widened interval and verdict, and the labeled intervals."""
    probs, labels = window
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    truth = float(correct.mean())
    out: dict = {"truth": truth}
    lf = label_free.estimate(*reference, probs, seed=int(rng.integers(1 << 30)))
    out["cbpe"] = (lf.estimated_accuracy, *lf.bootstrap_interval)  # CBPE's own bootstrap interval, before widening
    for method in METHODS[1:]:
        est = AccuracyEstimator(method, seed=int(rng.integers(1 << 30))).fit(*reference).estimate(probs)  # type: ignore[arg-type]
        out[method] = (est.estimated_accuracy, *est.interval)
    out["label_free"] = (lf.estimated_accuracy, *lf.interval)
    out["reliability"] = lf.reliability.to_dict()
    ref_conf, cur_conf = np.sort(reference[0].max(axis=1)), probs.max(axis=1)
    out["low_share_by_support"] = {k: float(np.mean(cur_conf < ref_conf[k - 1])) for k in (5, 10, 20, 50)}
    return out | labeled_window(reference, window, rng)


def labeled_window(reference: Window, window: Window, rng: np.random.Generator) -> dict:
    """The prediction-powered interval from LABELS random labels of the window, and the labels' own exact one."""
    probs, labels = window
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    labeled = rng.choice(WINDOW, LABELS, replace=False)
    rest = np.setdiff1d(np.arange(WINDOW), labeled)
    f = AccuracyEstimator("cbpe").fit(*reference).predicted_correct(probs)
    powered = prediction_powered_accuracy(f[rest], f[labeled], correct[labeled])
    inclusion = weighted_draw(f, LABELS)
    drawn = np.flatnonzero(rng.random(WINDOW) < inclusion)
    weighted = weighted_accuracy(f, inclusion, drawn, correct[drawn], len(drawn))
    return {"truth": float(correct.mean()), "powered": (powered.estimate, *powered.interval),
            "labels_only": (powered.labels_only_estimate, *proportion_interval(correct[labeled].sum(), LABELS)),
            "weighted": (weighted.estimate, *weighted.interval), "weighted_labels": len(drawn)}


def interval_cell(records: list[dict], key: str) -> dict:
    """Coverage of the window's realized accuracy, mean absolute error, bias and width of one interval, in points."""
    truth = np.array([r["truth"] for r in records])
    values = np.array([r[key] for r in records])
    held = (values[:, 1] <= truth) & (truth <= values[:, 2])
    return {"coverage": float(held.mean()), "mae_points": float(100 * np.mean(np.abs(values[:, 0] - truth))),
            "bias_points": float(100 * np.mean(values[:, 0] - truth)), "width_points": float(100 * np.mean(values[:, 2] - values[:, 1]))}


def predictability(reference: Window, bank: Window) -> dict:
    """R^2 of per-sample correctness on the case's bank: CBPE alone, and the best in-sample linear mix with more signals."""
    probs, labels = bank
    y = (probs.argmax(axis=1) == labels).astype(np.float64)
    f = AccuracyEstimator("cbpe").fit(*reference).predicted_correct(probs)
    top = np.sort(probs, axis=1)
    entropy = -(np.clip(probs, 1e-12, 1) * np.log(np.clip(probs, 1e-12, 1))).sum(axis=1)
    mix = np.column_stack([np.ones(len(y)), f, top[:, -1] - top[:, -2], entropy, np.log(np.clip(1 - top[:, -1], 1e-9, 1))])
    fitted = mix @ np.linalg.lstsq(mix, y, rcond=None)[0]
    r2 = {"cbpe": _r2(y, f), "best_mix_in_sample": _r2(y, fitted)}
    share = (WINDOW - LABELS) / WINDOW  # N / (N + n)
    return {"r2": r2, "width_ratio_floor": {k: float(np.sqrt(max(1 - v * share, 0.0))) for k, v in r2.items()}}


def _r2(y: np.ndarray, g: np.ndarray) -> float:
    return 0.0 if np.std(y) == 0 or np.std(g) == 0 else float(np.corrcoef(y, g)[0, 1] ** 2)


def summarize(records: list[dict], labeled: list[dict], calibrated: bool) -> dict:
    """Coverage, mean error and width per estimator; flag rate; covered-or-flagged for the default; the labeled intervals."""
    truth = np.array([r["truth"] for r in records])
    cell: dict = {"calibrated": calibrated, "true_accuracy": float(truth.mean()), "windows": len(records), "labeled_windows": len(labeled)}
    cell |= {key: interval_cell(records, key) for key in (*METHODS, "label_free")}
    cell |= {key: interval_cell(labeled, key) for key in ("powered", "labels_only", "weighted")}
    cell["weighted_mean_labels"] = float(np.mean([r["weighted_labels"] for r in labeled]))
    flagged = np.array([not r["reliability"]["reliable"] for r in records])
    values = np.array([r["label_free"] for r in records])
    held = (values[:, 1] <= truth) & (truth <= values[:, 2])
    cell["flag_rate"] = float(flagged.mean())
    cell["covered_or_flagged"] = float(np.mean(held | flagged))
    cell["signals"] = {k: float(np.median([r["reliability"][k] for r in records])) for k in ("spread_points", "low_confidence_share", "predicted_class_shift")}
    cell["powered_width_ratio"] = cell["powered"]["width_points"] / cell["labels_only"]["width_points"]
    cell["weighted_width_ratio"] = cell["weighted"]["width_points"] / cell["labels_only"]["width_points"]
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--labeled-trials", type=int, default=300, help="windows per case for the labeled intervals")
    parser.add_argument("--raw", help="also write every window's record here (JSON), to study the thresholds")
    args = parser.parse_args()
    started = time.perf_counter()
    samplers, references, banks = scenarios(np.random.default_rng(0))
    cases: dict = {}
    raw: dict = {}
    for number, (case, sampler) in enumerate(samplers.items()):
        reference = references["unseen" if case.startswith("unseen") else "default"]
        bank_probs, bank_labels = banks[case]
        bank_cbpe = AccuracyEstimator("cbpe").fit(*reference).predicted_correct(bank_probs).mean()
        bank_accuracy = float((bank_probs.argmax(axis=1) == bank_labels).mean())
        calibrated = bool(abs(100 * (bank_cbpe - bank_accuracy)) <= CALIBRATED_POINTS)
        records = [one_window(reference, sampler(np.random.default_rng([number, t])), np.random.default_rng([number, t, 1]))
                   for t in range(args.trials)]
        labeled = [labeled_window(reference, sampler(np.random.default_rng([number, t, 2])), np.random.default_rng([number, t, 3]))
                   for t in range(args.labeled_trials)]
        cases[case] = summarize(records, labeled, calibrated) | predictability(reference, banks[case])
        raw[case] = {"calibrated": calibrated, "records": records}
        if args.raw:  # as it goes: a slow machine still leaves the cases it finished
            Path(args.raw).write_text(json.dumps(raw))
        c = cases[case]
        print(f"{case:18} acc {100 * c['true_accuracy']:5.1f} cal {calibrated!s:5} | " + " ".join(
            f"{m} {c[m]['coverage']:.2f}/{c[m]['mae_points']:4.1f}" for m in (*METHODS, "label_free"))
              + f" | flag {c['flag_rate']:.2f} cov|flag {c['covered_or_flagged']:.2f} | ppi {c['powered']['coverage']:.2f} "
              f"x{c['powered_width_ratio']:.2f} weighted {c['weighted']['coverage']:.2f} x{c['weighted_width_ratio']:.2f} (floor {c['width_ratio_floor']['best_mix_in_sample']:.2f}) | {c['signals']}", flush=True)
    calibrated_cases = [c for c in cases.values() if c["calibrated"]]
    broken = [c for c in cases.values() if not c["calibrated"]]
    summary = {
        "estimators": {
            m: {"worst_calibrated_coverage": min(c[m]["coverage"] for c in calibrated_cases),
                "mean_calibrated_coverage": float(np.mean([c[m]["coverage"] for c in calibrated_cases])),
                "mae_points_all": float(np.mean([c[m]["mae_points"] for c in cases.values()])),
                "mae_points_calibrated": float(np.mean([c[m]["mae_points"] for c in calibrated_cases])),
                "mean_width_points_calibrated": float(np.mean([c[m]["width_points"] for c in calibrated_cases]))}
            for m in (*METHODS, "label_free")
        },
        "calibrated_cases": len(calibrated_cases),
        "broken_cases": len(broken),
        "worst_covered_or_flagged_broken": min((c["covered_or_flagged"] for c in broken), default=None),
        "flag_rate_calibrated": float(np.mean([c["flag_rate"] for c in calibrated_cases])),
        "flag_rate_broken": float(np.mean([c["flag_rate"] for c in broken])) if broken else None,
        "powered_worst_coverage": min(c["powered"]["coverage"] for c in cases.values()),
        "labels_only_worst_coverage": min(c["labels_only"]["coverage"] for c in cases.values()),
        "powered_width_ratio_calibrated": float(np.mean([c["powered_width_ratio"] for c in calibrated_cases])),
        "powered_width_ratio_all": float(np.mean([c["powered_width_ratio"] for c in cases.values()])),
        "powered_width_ratio_best_calibrated": min(c["powered_width_ratio"] for c in calibrated_cases),
        # The narrowest PPI any predictor built from the probabilities allows (in-sample R^2 on each bank).
        "width_ratio_floor_calibrated": float(np.mean([c["width_ratio_floor"]["best_mix_in_sample"] for c in calibrated_cases])),
        "best_r2_calibrated": max(c["r2"]["best_mix_in_sample"] for c in calibrated_cases),
        "weighted_worst_coverage": min(c["weighted"]["coverage"] for c in cases.values()),
        "weighted_width_ratio_calibrated": float(np.mean([c["weighted_width_ratio"] for c in calibrated_cases])),
        "weighted_width_ratio_worst_calibrated": max(c["weighted_width_ratio"] for c in calibrated_cases),
        "weighted_mean_labels": float(np.mean([c["weighted_mean_labels"] for c in cases.values()])),
    }
    print(summary)
    write_result("accuracy_estimators", {
        "summary": summary, "cases": cases,
        "setup": {"window": WINDOW, "labels": LABELS, "trials": args.trials, "labeled_trials": args.labeled_trials, "bank": BANK, "corruptions": CORRUPTIONS, "severities": SEVERITIES,
                  "label_shift_share": LABEL_SHIFT_SHARE, "unseen_share": UNSEEN_SHARE, "calibrated_points": CALIBRATED_POINTS,
                  "thresholds": {"max_spread_points": label_free.MAX_SPREAD_POINTS,
                                 "max_low_confidence_share": label_free.MAX_LOW_CONFIDENCE_SHARE,
                                 "max_predicted_class_shift": label_free.MAX_PREDICTED_CLASS_SHIFT},
                  "seconds": time.perf_counter() - started},
    }, ("summary",))


if __name__ == "__main__":
    main()
