"""Quality of the detectors on a digits shift suite: false-positive rate, power per shift and severity, accuracy-estimate error.

Data: scikit-learn's digits upscaled to 32x32 (shiftwatch.examples.digits), embedded (64-d)
and classified by the project's reference CNN (shiftwatch.examples.digits_cnn, trained
here from its seed in seconds). The clean distribution is the held-out val + test images;
reference and current windows are independent draws (with replacement) from it, so "no
change" is exactly true. Shifts: MNIST-C style corruptions at severities 1..5 (each window
draws from a bank of corrupted held-out images), label shift (one class's share 0.25 ..
0.65 instead of 0.1), and an unseen class (a second CNN trained without class 9; class 9's
share 5 .. 50 %).

Per method: FPR over >= 100 null windows at each window size; power (share of windows
flagged: significant AND at least the method's practical effect) per shift, severity and
window size 100 / 500 / 1000; the domain classifier (the slowest) at 500 only.
Label-free accuracy: ATC and CBPE against the true window accuracy, MAE over all windows of
500. Writes bench/results/detectors_quality.json. With ``--synthetic``: the synthetic
embedding suite of bench/detectors_quality_synthetic.py (issue 14) against alibi-detect and
Evidently on the same windows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shiftwatch.detectors import DETECTORS
from shiftwatch.detectors.accuracy import atc_estimate, cbpe_estimate, score
from shiftwatch.examples import digits
from shiftwatch.examples.digits_cnn import family, train_reference
from shiftwatch.retrain.torch_contract import ContractModel
from shiftwatch.retrain.trainer import TrainConfig, fit, predict

OUT = Path(__file__).resolve().parent / "results" / "detectors_quality.json"
ALPHA = 0.05
REFERENCE_SIZE = 1000
WINDOWS = (100, 500, 1000)
TRIALS = {100: 5, 500: 10, 1000: 5}  # power resolution 0.2 / 0.1 / 0.2; 500 is the target window
NULL_TRIALS = 100
BANK = 1000  # corrupted images per (corruption, severity); windows draw from the bank
CORRUPTIONS = ("gaussian_noise", "impulse_noise", "blur", "brightness", "contrast", "rotation")
LABEL_SHIFT_SHARE = (0.25, 0.35, 0.45, 0.55, 0.65)  # share of class 0 (0.1 when balanced)
UNSEEN_SHARE = (0.05, 0.1, 0.2, 0.3, 0.5)  # share of the class the second model never saw
UNSEEN_CLASS = 9
# Fewer permutations than the defaults keep the suite in minutes; p-value resolution 0.01.
CONFIG = {
    "mmd": {"n_permutations": 99},
    "lsdd": {"n_permutations": 99},
    "ks": {},
    "classifier": {"n_permutations": 99, "n_trees": 30, "n_folds": 2},
    "bbsd": {},
}
CLASSIFIER_WINDOWS = (500,)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class Outputs:
    """Embeddings, probabilities and labels of an image set under one model."""

    def __init__(self, model: ContractModel, images: np.ndarray, labels: np.ndarray) -> None:
        logits, self.embeddings = predict(model, images)
        self.probs = softmax(logits.astype(np.float64))
        self.labels = labels

    def take(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.embeddings[index], self.probs[index], self.labels[index]


def model_without(held_class: int, seed: int = 0) -> ContractModel:
    splits = digits.split_digits(seed)
    keep, _ = digits.hold_out_class(splits.train.labels, held_class)
    model = family().new_model(seed)
    fit(model, splits.train.images[keep], splits.train.labels[keep], TrainConfig(seed=seed))
    return model


def build_scenarios(rng: np.random.Generator, progress: Progress) -> tuple[dict, dict]:
    """Per scenario and severity: a sampler of current windows; plus the reference windows."""
    splits = digits.split_digits(0)
    images = np.concatenate([splits.val.images, splits.test.images])
    labels = np.concatenate([splits.val.labels, splits.test.labels])
    task = progress.add_task("training the reference CNN and a CNN without class 9", total=2)
    model = train_reference(seed=0)
    progress.advance(task)
    blind = model_without(UNSEEN_CLASS)
    progress.advance(task)

    clean = Outputs(model, images, labels)
    reference = clean.take(rng.integers(0, len(labels), REFERENCE_SIZE))
    uniform = lambda bank: (lambda n, r: bank.take(r.integers(0, len(bank.labels), n)))
    scenarios: dict[tuple[str, int], object] = {("none", 0): uniform(clean)}

    task = progress.add_task("corrupting and embedding banks", total=len(CORRUPTIONS) * 5)
    for name in CORRUPTIONS:
        for severity in digits.SEVERITIES:
            draw = rng.integers(0, len(labels), BANK)
            bank = Outputs(model, digits.corrupt(images[draw], name, severity, rng), labels[draw])
            scenarios[(name, severity)] = uniform(bank)
            progress.advance(task)

    def label_shift(share: float):
        weights = np.full(10, (1 - share) / 9)
        weights[0] = share
        return lambda n, r: clean.take(digits.label_shift_indices(labels, weights, n, r))

    for severity, share in enumerate(LABEL_SHIFT_SHARE, start=1):
        scenarios[("label_shift", severity)] = label_shift(share)

    seen, unseen = digits.hold_out_class(labels, UNSEEN_CLASS)
    blind_outputs = Outputs(blind, images, labels)

    def with_unseen(share: float):
        def sample(n: int, r: np.random.Generator):
            k = r.binomial(n, share)
            index = np.r_[r.choice(seen, n - k), r.choice(unseen, k)]
            return blind_outputs.take(r.permutation(index))

        return sample

    blind_reference = blind_outputs.take(rng.choice(seen, REFERENCE_SIZE))
    for severity, share in enumerate(UNSEEN_SHARE, start=1):
        scenarios[("unseen_class", severity)] = with_unseen(share)
    references = {"default": reference, "unseen": blind_reference}
    return scenarios, references


def fitted_detectors(reference: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict:
    embeddings, probs, _ = reference
    out = {}
    for name, config in CONFIG.items():
        data = probs if name == "bbsd" else embeddings
        out[name] = DETECTORS[name](alpha=ALPHA, **config).fit(data)
    return out


def run_window(detectors: dict, window: tuple, size: int, reference: tuple) -> dict:
    embeddings, probs, labels = window
    outcome = {}
    for name, detector in detectors.items():
        if name == "classifier" and size not in CLASSIFIER_WINDOWS:
            continue
        result = detector.test(probs if name == "bbsd" else embeddings)
        outcome[name] = (result.p_value <= ALPHA, result.drift, result.effect_size)
    ref_probs, ref_labels = reference[1], reference[2]
    ref_correct = (ref_probs.argmax(axis=1) == ref_labels).astype(float)
    truth = float((probs.argmax(axis=1) == labels).mean())
    outcome["accuracy"] = {
        "true": truth,
        "atc": atc_estimate(score(ref_probs, "negative_entropy"), ref_correct, score(probs, "negative_entropy")),
        "cbpe": cbpe_estimate(score(ref_probs, "max_confidence"), ref_correct, score(probs, "max_confidence")),
    }
    return outcome


def main() -> None:
    console = Console()
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    results: dict = {"fpr": {}, "power": {}, "accuracy_estimation": {}}
    with Progress(console=console, transient=True) as progress:
        scenarios, references = build_scenarios(rng, progress)
        detectors = {key: fitted_detectors(ref) for key, ref in references.items()}
        prep_seconds = time.perf_counter() - started

        # False-positive rate: unshifted windows at every size.
        task = progress.add_task("null windows", total=NULL_TRIALS * len(WINDOWS))
        for size in WINDOWS:
            flags: dict[str, list] = {}
            for trial in range(NULL_TRIALS):
                window = scenarios[("none", 0)](size, np.random.default_rng(10_000 + trial))
                outcome = run_window(detectors["default"], window, size, references["default"])
                outcome.pop("accuracy")
                for name, (significant, drift, _) in outcome.items():
                    flags.setdefault(name, []).append((significant, drift))
                progress.advance(task)
            results["fpr"][str(size)] = {
                name: {"significant": float(np.mean([f[0] for f in v])), "drift": float(np.mean([f[1] for f in v])), "windows": len(v)}
                for name, v in flags.items()
            }

        shifted = [key for key in scenarios if key[1] > 0]
        task = progress.add_task("shifted windows", total=sum(TRIALS.values()) * len(shifted))
        errors: dict[str, list] = {"atc": [], "cbpe": []}
        for number, key in enumerate(shifted):
            kind = "unseen" if key[0] == "unseen_class" else "default"
            for size in WINDOWS:
                cell: dict[str, list] = {}
                for trial in range(TRIALS[size]):
                    window = scenarios[key](size, np.random.default_rng([number, size, trial]))
                    outcome = run_window(detectors[kind], window, size, references[kind])
                    accuracy = outcome.pop("accuracy")
                    if size == 500:
                        record = results["accuracy_estimation"].setdefault(f"{key[0]}/{key[1]}", [])
                        record.append(accuracy)
                        for method in errors:
                            errors[method].append(abs(accuracy[method] - accuracy["true"]))
                    for name, flags in outcome.items():
                        cell.setdefault(name, []).append(flags)
                    progress.advance(task)
                for name, flags in cell.items():
                    entry = results["power"].setdefault(name, {}).setdefault(key[0], {}).setdefault(str(key[1]), {})
                    entry[str(size)] = {
                        "drift": float(np.mean([f[1] for f in flags])),
                        "significant": float(np.mean([f[0] for f in flags])),
                        "median_effect": float(np.median([f[2] for f in flags])),
                    }
    # Null windows of 500 count towards the estimate's error too (no shift must mean no drop).
    for trial in range(20):
        window = scenarios[("none", 0)](500, np.random.default_rng(20_000 + trial))
        accuracy = run_window({}, window, 500, references["default"])["accuracy"]
        for method in errors:
            errors[method].append(abs(accuracy[method] - accuracy["true"]))

    results["accuracy_estimation"] = {
        "mae_points": {method: 100 * float(np.mean(v)) for method, v in errors.items()},
        "windows": len(errors["atc"]),
        "per_scenario_points": {
            scenario: {
                "true_accuracy": float(np.mean([r["true"] for r in records])),
                **{m: 100 * float(np.mean([abs(r[m] - r["true"]) for r in records])) for m in ("atc", "cbpe")},
            }
            for scenario, records in results["accuracy_estimation"].items()
        },
    }
    results["best_power_at_500"] = {
        shift: {
            severity: max(results["power"][m][shift][severity]["500"]["drift"] for m in results["power"] if shift in results["power"][m])
            for severity in results["power"]["mmd"][shift]
        }
        for shift in results["power"]["mmd"]
    }
    results["setup"] = {
        "reference_size": REFERENCE_SIZE, "windows": WINDOWS, "trials": TRIALS, "null_trials": NULL_TRIALS,
        "alpha": ALPHA, "configs": CONFIG, "classifier_windows": CLASSIFIER_WINDOWS, "corruptions": CORRUPTIONS,
        "label_shift_share": LABEL_SHIFT_SHARE, "unseen_share": UNSEEN_SHARE, "bank": BANK,
        "prep_seconds": prep_seconds, "total_seconds": time.perf_counter() - started,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    report(console, results)


def report(console: Console, results: dict) -> None:
    table = Table(title="false-positive rate (drift flagged on unshifted windows), alpha 0.05")
    table.add_column("method")
    for size in WINDOWS:
        table.add_column(f"n={size}")
    for name in results["fpr"]["500"]:
        table.add_row(name, *(f"{results['fpr'][str(s)].get(name, {}).get('drift', float('nan')):.2f}" for s in WINDOWS))
    console.print(table)
    table = Table(title="power at window 500 (significant and practical), per severity 1..5")
    table.add_column("shift")
    for name in results["power"]:
        table.add_column(name)
    for shift in results["power"]["mmd"]:
        row = [shift]
        for name in results["power"]:
            cells = results["power"][name].get(shift, {})
            row.append(" ".join(f"{cells[s]['500']['drift']:.1f}" for s in sorted(cells)))
        table.add_row(*row)
    console.print(table)
    console.print({"accuracy MAE (points)": results["accuracy_estimation"]["mae_points"], "seconds": round(results["setup"]["total_seconds"])})
    console.print(f"wrote {OUT}")


if __name__ == "__main__":
    import sys

    if "--synthetic" in sys.argv:  # the synthetic embedding suite (issue 14), ours and peers in one run
        from detectors_quality_synthetic import main as synthetic_main

        synthetic_main()
    else:
        main()
