"""Which 200 labels help most after a shift: the selection policy against 200 random samples.

Per seed: train the reference digits CNN on clean data, corrupt a pool of production images
(the train images re-drawn through a corruption: all of them, or a share of the traffic as
when one camera of three goes wrong) and a held-out shifted test set, log the
pool's predictions into a temporary shiftwatch database, let the drift detector (MMD witness
scores) flag samples, run the real selection policy (``select_for_labeling``: flagged +
uncertain, k-center diversity, 10% random slice) and label its 200 picks with the oracle.
The peer labels 200 uniformly random pool samples; an ablation labels the 200 smallest
margins (uncertainty only, no diversity, no random slice). Each labeled set is added to the
clean training data and the reference model is fine-tuned; we report accuracy on the
shifted test set. Prints a table and writes bench/results/labeling_policy.json.

    python bench/labeling_policy.py [--seeds 3] [--corruption rotation] [--severity 3] [--shares 1.0 0.3]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.service import log_predictions
from shiftwatch.db import Database, utcnow
from shiftwatch.detectors.mmd import MMDDetector
from shiftwatch.examples.digits import CLASS_NAMES, corrupt, encode_png, split_digits
from shiftwatch.examples.digits_cnn import train_reference
from shiftwatch.labeling import selection
from shiftwatch.labeling.flags import FlaggedItem
from shiftwatch.labeling.oracle import label_with_oracle
from shiftwatch.labeling.policy import Budget, select_for_labeling
from shiftwatch.labeling.queries import labeled_samples
from shiftwatch.migrate import upgrade
from shiftwatch.retrain.trainer import TrainConfig, accuracy, fit, predict
from shiftwatch.settings import Settings
from shiftwatch_client.records import PredictionRecord

BUDGET = 200
# Fine-tuning, not training from scratch: 4 epochs over clean + labeled recover most of the shift at a third of the cost.
FINE_TUNE = TrainConfig(epochs=4)
console = Console()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def policy_picks(
    work: Path, pool: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, embeddings: np.ndarray,
    reference_embeddings: np.ndarray, seed: int,
) -> tuple[np.ndarray, dict[str, int]]:
    """Indices of the pool samples the real queue selects and the oracle labels (through a real database)."""
    url = f"sqlite:///{work / 'bench.db'}"
    upgrade(url)
    db = Database.connect(url)
    settings = Settings(
        database_url=url, data_dir=work / "data", scheduler_enabled=False,
        labeling_batch_size=BUDGET, labeling_daily_budget=BUDGET,
        labeling_audit_per_route=BUDGET // 10,  # the 10% random slice the numbers in docs/labeling.md were measured with
    )
    with db.session() as session:
        registry.register_model(session, "digits", CLASS_NAMES)
        registry.register_version(session, "digits", "v1", embedding_dim=embeddings.shape[1], state="production")
    store = InputStore(settings.data_dir)
    refs = [store.put(encode_png(image), "png") for image in pool]
    start = utcnow()
    records = [
        PredictionRecord(
            model="digits", version="v1", predicted_class=int(p.argmax()), confidence=float(p.max()),
            embedding=e, probabilities=p.astype(np.float32), input_ref=ref,
        )
        for p, e, ref in zip(probabilities, embeddings, refs, strict=True)
    ]
    log_predictions(db, records, max_rows=settings.max_batch_rows, retention_days=settings.retention_days)
    # What the detectors would flag: the MMD witness function's most atypical production samples.
    result = MMDDetector(n_permutations=50, n_evidence=BUDGET, seed=seed).fit(reference_embeddings).test(embeddings)
    flags = [
        FlaggedItem(records[i].id, score=s, method="mmd_witness")
        for i, s in zip(result.evidence["most_atypical"], result.evidence["witness_scores"], strict=True)
    ]
    with db.session() as session:
        chosen = select_for_labeling(session, "digits", Budget.of(settings, "digits"), start=start, flagged=flags, seed=seed)
    truth = {ref: int(label) for ref, label in zip(refs, labels, strict=True)}
    with db.session() as session:
        label_with_oracle(session, "digits", truth.__getitem__)
        samples = labeled_samples(session, "digits")
    db.dispose()
    index = {record.id: i for i, record in enumerate(records)}
    return np.asarray([index[s.prediction_id] for s in samples]), chosen.by_reason


def fine_tuned_accuracy(reference, train, pool: np.ndarray, pool_labels: np.ndarray, picks: np.ndarray, test, seed: int) -> float:
    model = copy.deepcopy(reference)
    images = np.concatenate([train.images, pool[picks]])
    labels = np.concatenate([train.labels, pool_labels[picks]])
    fit(model, images, labels, replace(FINE_TUNE, seed=seed))
    return accuracy(model, test[0], test[1])


def run_seed(seed: int, reference, corruption: str, severity: int, share: float) -> dict:
    splits = split_digits(seed)
    rng = np.random.default_rng(1000 + seed)
    pool, pool_labels = splits.train.images.copy(), splits.train.labels
    shifted = rng.random(len(pool)) < share
    pool[shifted] = corrupt(splits.train.images[shifted], corruption, severity, rng)
    test = (corrupt(splits.test.images, corruption, severity, rng), splits.test.labels)
    logits, embeddings = predict(reference, pool)
    probabilities = softmax(logits)
    _, reference_embeddings = predict(reference, splits.train.images)
    with tempfile.TemporaryDirectory(prefix="bench-labeling-") as work:
        policy, by_reason = policy_picks(
            Path(work), pool, pool_labels, probabilities, embeddings, reference_embeddings, seed
        )
    picks = {
        "policy": policy,
        "random": rng.choice(len(pool), size=BUDGET, replace=False),
        "uncertainty_only": np.argsort(selection.margins(probabilities, probabilities.max(axis=1)))[:BUDGET],
    }
    out = {
        "seed": seed,
        "shifted_share": float(shifted.mean()),
        "labels": {name: int(len(p)) for name, p in picks.items()},
        "policy_reasons": by_reason,
        "accuracy_before": accuracy(reference, *test),
        "accuracy_clean": accuracy(reference, splits.test.images, splits.test.labels),
        "pool_error_rate": {name: float(np.mean(logits[p].argmax(axis=1) != pool_labels[p])) for name, p in picks.items()},
    }
    out["accuracy_after"] = {
        name: fine_tuned_accuracy(reference, splits.train, pool, pool_labels, p, test, seed) for name, p in picks.items()
    }
    return out


NAMES = ("policy", "random", "uncertainty_only")


def summarize(runs: list[dict], corruption: str, severity: int, share: float) -> dict:
    """Print one scenario's table; return its summary for the JSON."""
    mean = {n: float(np.mean([r["accuracy_after"][n] for r in runs])) for n in NAMES}
    title = f"shifted-test accuracy after labeling {BUDGET} ({corruption} s{severity} on {share:.0%} of traffic)"
    table = Table(title=title)
    for column in ("seed", "before", *NAMES, "policy / random"):
        table.add_column(column, justify="right")
    for r in runs:
        acc = r["accuracy_after"]
        table.add_row(str(r["seed"]), f"{r['accuracy_before']:.3f}", *(f"{acc[n]:.3f}" for n in NAMES),
                      f"{acc['policy'] / acc['random']:.3f}")  # fmt: skip
    before = float(np.mean([r["accuracy_before"] for r in runs]))
    table.add_row("mean", f"{before:.3f}", *(f"{mean[n]:.3f}" for n in NAMES), f"{mean['policy'] / mean['random']:.3f}")
    console.print(table)
    return {
        "corruption": corruption,
        "severity": severity,
        "shifted_share": share,
        "mean_accuracy_after": mean,
        "mean_accuracy_before": before,
        "policy_over_random": mean["policy"] / mean["random"],
        "policy_beats_random_in_seeds": sum(r["accuracy_after"]["policy"] > r["accuracy_after"]["random"] for r in runs),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--corruption", default="rotation")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--shares", type=float, nargs="+", default=[1.0, 0.3], help="share of traffic corrupted")
    args = parser.parse_args()
    started = time.perf_counter()
    runs: dict[float, list[dict]] = {share: [] for share in args.shares}
    with Progress(console=console) as progress:
        task = progress.add_task(f"{args.corruption} s{args.severity}", total=args.seeds * len(args.shares))
        for seed in range(args.seeds):
            reference = train_reference(seed)
            for share in args.shares:
                runs[share].append(run_seed(seed, reference, args.corruption, args.severity, share))
                progress.advance(task)
    result = {
        "benchmark": "labeling_policy",
        "budget": BUDGET,
        "peer": "200 uniformly random pool samples (same fine-tuning)",
        "fine_tune": {"epochs": FINE_TUNE.epochs, "data": "clean train split + the labeled pool samples"},
        "scenarios": [summarize(r, args.corruption, args.severity, share) for share, r in runs.items()],
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
    }
    out = Path(__file__).parent / "results" / "labeling_policy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
