"""What SQLite's synchronous=FULL (every acknowledged batch fsynced) costs ingest against NORMAL, same run.

Batches of 256 predictions (64-d embeddings, 10-class probabilities) stored through
``collector.ingest.ingest`` into a migrated SQLite file on this machine's disk, alternating
FULL and NORMAL rounds so both see the same disk and load. Writes bench/results/sqlite_sync.json.

    python bench/sqlite_sync.py [--rounds 6] [--batches 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import write_result

from shiftwatch.collector import registry
from shiftwatch.collector.ingest import ingest
from shiftwatch.db import Database
from shiftwatch.migrate import upgrade
from shiftwatch_client.records import PredictionRecord, grouped_columns

BATCH, DIM, CLASSES = 256, 64, 10


def connect(path: Path, mode: str) -> Database:
    db = Database.connect(f"sqlite:///{path}")

    @event.listens_for(db.engine, "connect")
    def _mode(dbapi_connection, _record):  # runs after make_engine's pragmas
        dbapi_connection.execute(f"PRAGMA synchronous={mode}")

    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA synchronous")).scalar() == {"FULL": 2, "NORMAL": 1}[mode]
    return db


def batch(rng: np.random.Generator) -> list:
    probs = rng.dirichlet(np.ones(CLASSES), BATCH).astype(np.float32)
    records = [
        PredictionRecord("bench", "v1", int(p.argmax()), float(p.max()), embedding=rng.random(DIM, dtype=np.float32),
                         probabilities=p, request_id=f"r{i}", stream_id="cam-1", latency_ms=1.0)
        for i, p in enumerate(probs)
    ]  # fmt: skip
    return grouped_columns(records)


def round_rate(path: Path, mode: str, batches: int, rng: np.random.Generator) -> float:
    db = connect(path, mode)
    prepared = [batch(rng) for _ in range(batches)]
    started = time.perf_counter()
    for chunks in prepared:
        ingest(db, chunks, max_rows=10_000, retention_days=30)
    seconds = time.perf_counter() - started
    db.engine.dispose()
    return batches * BATCH / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        path = Path(tmp) / "bench.db"
        upgrade(f"sqlite:///{path}")
        db = Database.connect(f"sqlite:///{path}")
        with db.session() as session:
            registry.register_model(session, "bench", [str(i) for i in range(CLASSES)])
            registry.register_version(session, "bench", "v1", embedding_dim=DIM)
        db.engine.dispose()
        rates: dict[str, list[float]] = {"FULL": [], "NORMAL": []}
        for i in range(args.rounds):
            for mode in ("NORMAL", "FULL") if i % 2 else ("FULL", "NORMAL"):
                rates[mode].append(round_rate(path, mode, args.batches, rng))
    median = {mode: float(np.median(values)) for mode, values in rates.items()}
    result = {
        "batch_rows": BATCH,
        "batches_per_round": args.batches,
        "rows_per_second": {mode: [round(v) for v in values] for mode, values in rates.items()},
        "median_rows_per_second": {mode: round(v) for mode, v in median.items()},
        "full_over_normal": round(median["FULL"] / median["NORMAL"], 3),
        "note": "one transaction (one fsync under FULL) per 256-row batch; ratio, not absolute rate, is the claim",
    }
    write_result("sqlite_sync", result, ("median_rows_per_second", "full_over_normal"))


if __name__ == "__main__":
    main()
