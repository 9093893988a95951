"""Embeddings kept for a sample: bytes per row on PostgreSQL and detector power, before and after.

Bytes: 20,000 rows of 512-d float32 embeddings and 10-class probabilities stored through the
ingest path (``collector.service.log_predictions``) into a fresh PostgreSQL database at each keep
rate; bytes per row = pg_total_relation_size (heap, TOAST, indexes) of every ``predictions``
partition plus ``prediction_ids``, over the rows stored.

Power: the digits quality suite of bench/detectors_quality.py (reference CNN embeddings, 64-d;
MNIST-C corruptions, label shift, an unseen class), at severities 2 and 4, on windows of 500.
Each row gets a random UUID and is kept by the same hash ingest uses (``embedding_keep.sampled``):

- ``all_rows`` (before): reference = 1,000 rows, window = the last 500 rows;
- ``kept_same_n`` (after, as the detectors read it): reference = the kept rows of a range holding
  1,000 of them, window = the last 500 kept rows (window_last_n counts kept embeddings);
- ``kept_same_rows`` (after, had the window stayed 500 rows): the kept rows among the same 1,000
  and 500 rows: what a window_minutes config loses if its span is not stretched.

Output detectors (BBSD on probabilities) read every row in both cases: their power cannot move.

    python bench/embedding_keep.py [--rows 20000] [--trials 40]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support imports
from detectors_quality import build_scenarios  # bench/, this script's folder
from machine import write_result  # bench/, this script's folder

from shiftwatch.collector import registry
from shiftwatch.collector.embedding_keep import sampled
from shiftwatch.collector.ingest import forget_cached_versions
from shiftwatch.collector.records import PredictionRecord
from shiftwatch.collector.service import log_predictions
from shiftwatch.db import Database
from shiftwatch.detectors import DETECTORS
from shiftwatch.migrate import upgrade
from tests.support.databases import create_pg_database, drop_pg_database

DIM, CLASSES, BATCH = 512, 10, 1000
RATES = (1.0, 0.2, 0.1, 0.05, 0.0)
DEFAULT_RATE = 0.05  # SHIFTWATCH_EMBEDDING_KEEP_RATE's default
ALPHA, REFERENCE_SIZE, WINDOW = 0.05, 1000, 500
SEVERITIES = (2, 4)
# Embedding detectors only (the ones the sample changes); 99 permutations: p-value resolution 0.01.
CONFIG = {"mmd": {"n_permutations": 99}, "lsdd": {"n_permutations": 99}, "ks": {}}
console = Console()


def stored_bytes(db: Database) -> int:
    """Heap + TOAST + indexes of every predictions partition and of prediction_ids."""
    query = text(
        "SELECT COALESCE(SUM(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('predictions') "
        "WHERE isleaf"
    )
    with db.engine.connect() as connection:
        return int(connection.execute(query).scalar_one()) + int(
            connection.execute(text("SELECT pg_total_relation_size('prediction_ids')")).scalar_one()
        )


def bytes_per_row(rows: int) -> dict[str, dict[str, float]]:
    url = create_pg_database("sw_bench_embkeep")
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(2_000, DIM)).astype(np.float32)
    probs = rng.dirichlet(np.ones(CLASSES), 2_000).astype(np.float32)
    out: dict[str, dict[str, float]] = {}
    try:
        upgrade(url)
        db = Database.connect(url)
        with db.session() as session:
            registry.register_model(session, "bench", [str(i) for i in range(CLASSES)])
            registry.register_version(session, "bench", "v1", embedding_dim=DIM, state="production")
        start = datetime.now(UTC) - timedelta(hours=6)
        for rate in RATES:
            with db.engine.begin() as connection:
                connection.execute(text("TRUNCATE predictions, prediction_ids"))
            forget_cached_versions()
            began = time.perf_counter()
            for first in range(0, rows, BATCH):
                batch = [
                    PredictionRecord(
                        model="bench", version="v1", predicted_class=int(probs[i % 2_000].argmax()),
                        confidence=float(probs[i % 2_000].max()), embedding=pool[i % 2_000],
                        probabilities=probs[i % 2_000], request_id=f"req-{i}", stream_id=f"cam-{i % 8}",
                        input_ref=f"inputs/{i:08d}.png", latency_ms=1.5, ts=start + timedelta(milliseconds=i),
                    )
                    for i in range(first, min(first + BATCH, rows))
                ]
                log_predictions(db, batch, max_rows=BATCH, retention_days=30, embedding_keep_rate=rate)
            seconds = time.perf_counter() - began
            with db.engine.begin() as connection:
                connection.execute(text("ANALYZE predictions"))
                kept = int(connection.execute(text("SELECT count(*) FROM predictions WHERE embedding IS NOT NULL")).scalar_one())
            total = stored_bytes(db)
            out[str(rate)] = {"rows": rows, "kept": kept, "bytes": total, "bytes_per_row": round(total / rows, 1),
                              "ingest_rows_per_s": round(rows / seconds)}  # fmt: skip
            console.print(f"rate {rate}: {total / rows:.0f} B/row, {kept} embeddings kept, {rows / seconds:.0f} rows/s")
        db.dispose()
    finally:
        drop_pg_database(url)
    return out


class Stream:
    """An endless stream of one scenario's rows, each with a random id: the kept ones are the hash sample."""

    def __init__(self, draw, rng: np.random.Generator, rate: float) -> None:
        self.draw, self.rng, self.rate = draw, rng, rate

    def take(self, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The embeddings of ``n_rows`` rows, and which of them are kept."""
        embeddings = self.draw(n_rows, self.rng)[0]
        ids = self.rng.integers(0, 256, size=(n_rows, 16), dtype=np.uint8)
        ids = np.stack([np.frombuffer(uuid.UUID(bytes=row.tobytes(), version=4).bytes, np.uint8) for row in ids])
        return embeddings, sampled(ids, self.rate)

    def kept(self, n: int) -> np.ndarray:
        """The embeddings of the first ``n`` kept rows (how far back last_n kept rows reach)."""
        parts, found = [], 0
        while found < n:
            embeddings, keep = self.take(int(2 * (n - found) / self.rate) + 10)
            parts.append(embeddings[keep])
            found += int(keep.sum())
        return np.concatenate(parts)[:n]


def power(trials: int, rate: float) -> dict:
    rng = np.random.default_rng(0)
    with Progress(console=console, transient=True) as progress:
        scenarios, references = build_scenarios(rng, progress)
    clean = scenarios[("none", 0)]
    arms = ("all_rows", "kept_same_n", "kept_same_rows")
    shifted = [key for key in scenarios if key[1] in SEVERITIES] + [("none", 0)]
    cells: dict[str, dict[str, dict[str, float]]] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("windows", total=len(shifted) * trials)
        for number, key in enumerate(shifted):
            base = references["unseen" if key[0] == "unseen_class" else "default"][0]  # the suite's 1,000 rows
            kept_reference = base[sampled(_ids(len(base), number), rate)]  # the kept rows among them
            # The kept rows of a range holding REFERENCE_SIZE of them: a fresh draw through the hash sample
            # (the unseen-class model's clean rows are only at hand as the suite's fixed draw).
            same_n_reference = (
                base if key[0] == "unseen_class"
                else Stream(clean, np.random.default_rng([7, number]), rate).kept(REFERENCE_SIZE)
            )  # fmt: skip
            fitted = {
                "all_rows": {name: DETECTORS[name](alpha=ALPHA, **c).fit(base) for name, c in CONFIG.items()},
                "kept_same_n": {name: DETECTORS[name](alpha=ALPHA, **c).fit(same_n_reference) for name, c in CONFIG.items()},
                "kept_same_rows": {name: DETECTORS[name](alpha=ALPHA, **c).fit(kept_reference) for name, c in CONFIG.items()},
            }  # fmt: skip
            flags: dict[str, dict[str, list[bool]]] = {arm: {name: [] for name in CONFIG} for arm in arms}
            for trial in range(trials):
                stream = Stream(scenarios[key], np.random.default_rng([number, trial]), rate)
                rows, keep = stream.take(WINDOW)
                windows = {"all_rows": rows, "kept_same_n": stream.kept(WINDOW), "kept_same_rows": rows[keep]}
                for arm in arms:
                    for name, detector in fitted[arm].items():
                        if len(windows[arm]) < 10:
                            flags[arm][name].append(False)
                            continue
                        result = detector.test(windows[arm])
                        flags[arm][name].append(bool(result.p_value <= ALPHA and result.drift))
                progress.advance(task)
            cells[f"{key[0]}@{key[1]}"] = {arm: {name: float(np.mean(v)) for name, v in flags[arm].items()} for arm in arms}
    return cells


def _ids(n: int, seed: int) -> np.ndarray:
    raw = np.random.default_rng([99, seed]).integers(0, 256, size=(n, 16), dtype=np.uint8)
    return np.stack([np.frombuffer(uuid.UUID(bytes=row.tobytes(), version=4).bytes, np.uint8) for row in raw])


def summarize(cells: dict) -> dict:
    """Mean power over the shifted cells per arm and detector, and the largest per-cell gap to ``all_rows``."""
    shifted = {k: v for k, v in cells.items() if not k.startswith("none")}
    out: dict = {}
    for arm in ("kept_same_n", "kept_same_rows"):
        for name in CONFIG:
            gaps = [v[arm][name] - v["all_rows"][name] for v in shifted.values()]
            out[f"{arm}.{name}"] = {
                "mean_power_all_rows": round(float(np.mean([v["all_rows"][name] for v in shifted.values()])), 3),
                "mean_power": round(float(np.mean([v[arm][name] for v in shifted.values()])), 3),
                "mean_gap": round(float(np.mean(gaps)), 3),
                "largest_cell_gap": round(float(min(gaps, key=lambda g: -abs(g))), 3),
                "fpr": cells["none@0"][arm][name],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE)
    args = parser.parse_args()
    storage = bytes_per_row(args.rows)
    before, after = storage["1.0"]["bytes_per_row"], storage[str(args.rate)]["bytes_per_row"]
    cells = power(args.trials, args.rate)
    summary = summarize(cells)

    table = Table(title=f"embedding detectors, windows of {WINDOW}, keep rate {args.rate}")
    for column in ("arm.detector", "power all rows", "power kept", "mean gap", "largest cell gap", "FPR kept"):
        table.add_column(column)
    for key, row in summary.items():
        table.add_row(key, str(row["mean_power_all_rows"]), str(row["mean_power"]), str(row["mean_gap"]),
                      str(row["largest_cell_gap"]), str(row["fpr"]))  # fmt: skip
    console.print(table)
    same_n_gap = max(abs(row["mean_gap"]) for key, row in summary.items() if key.startswith("kept_same_n"))
    result = {
        "rate": args.rate,
        "bytes_per_row_before": before,
        "bytes_per_row_after": after,
        "bytes_ratio": round(before / after, 2),
        "largest_mean_power_gap_same_n": same_n_gap,
        "storage": storage,
        "power_summary": summary,
        "power_cells": cells,
        "trials_per_cell": args.trials,
        "window": WINDOW,
        "reference_size": REFERENCE_SIZE,
        "severities": list(SEVERITIES),
        "embedding": {"bytes_dim": DIM, "power_dim": 64},
    }
    write_result("embedding_keep", result, ("rate", "bytes_per_row_before", "bytes_per_row_after", "bytes_ratio",
                                            "largest_mean_power_gap_same_n"))  # fmt: skip


if __name__ == "__main__":
    main()
