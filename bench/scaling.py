"""How ingest and detector cost grow with window size and number of model versions (1, 10, 100).

Measured on this machine against PostgreSQL, then extrapolated in bench/results/scaling.json
and docs/scaling.md:
  ingest:   in-process ingest of 10,000 rows spread over V versions (a batch of mixed versions
            splits into V column groups), rows/s;
  window:   `queries.window(last_n=W)` for one version while the table holds V versions;
  detector: MMD fit + test (200 permutations) on W + W 64-d embeddings;
  tick:     V x (window + detector), the work of one scheduled detector tick for V versions.
Peer, same run: the detector's cost against numpy's squared-distance matrix alone (its floor).

    python bench/scaling.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support imports
from shiftwatch.collector import queries, registry
from shiftwatch.collector.service import log_predictions
from shiftwatch.db import Database
from shiftwatch.detectors.mmd import MMDDetector
from shiftwatch.migrate import upgrade
from shiftwatch.settings import Settings
from shiftwatch_client.records import PredictionRecord
from tests.support.databases import create_pg_database, drop_pg_database

DIM, CLASSES = 64, 10
VERSIONS = (1, 10, 100)
WINDOWS = (500, 1000, 2000, 4000)
INGEST_ROWS = 10_000
console = Console()


def rows_for(versions: list[str], n: int, rng: np.random.Generator, start: datetime) -> list[PredictionRecord]:
    probs = rng.dirichlet(np.ones(CLASSES), size=n).astype(np.float32)
    emb = rng.normal(size=(n, DIM)).astype(np.float32)
    return [
        PredictionRecord("scale", versions[i % len(versions)], int(probs[i].argmax()), float(probs[i].max()),
                         embedding=emb[i], probabilities=probs[i], ts=start + timedelta(milliseconds=i))
        for i in range(n)
    ]  # fmt: skip


def squared_distances(x: np.ndarray) -> np.ndarray:
    norms = (x * x).sum(axis=1)
    return norms[:, None] + norms[None, :] - 2.0 * (x @ x.T)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    url = create_pg_database("sw_bench_scale")
    results: dict = {"benchmark": "scaling", "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                     "embedding_dim": DIM}  # fmt: skip
    try:
        upgrade(url)
        db = Database.connect(url)
        settings = Settings(database_url=url)
        names = [f"v{i}" for i in range(max(VERSIONS))]
        with db.session() as session:
            registry.register_model(session, "scale", [str(i) for i in range(CLASSES)])
            ids = [registry.register_version(session, "scale", n, embedding_dim=DIM).id for n in names]
        start = datetime.now(UTC) - timedelta(hours=2)

        ingest = {}
        for v in VERSIONS:
            batch = rows_for(names[:v], INGEST_ROWS, rng, start)
            chunks = [batch[i : i + 1000] for i in range(0, len(batch), 1000)]
            t0 = time.perf_counter()
            for chunk in chunks:
                log_predictions(db, chunk, max_rows=settings.max_batch_rows, retention_days=settings.retention_days)
            seconds = time.perf_counter() - t0
            ingest[v] = {"rows": INGEST_ROWS, "seconds": seconds, "rows_per_s": INGEST_ROWS / seconds}
            console.print(f"ingest over {v} versions: {INGEST_ROWS / seconds:,.0f} rows/s")
        results["ingest"] = ingest

        # One hot version with enough rows for the biggest window, next to 100 versions' rows.
        later = rows_for([names[0]], max(WINDOWS) * 2, rng, start + timedelta(minutes=30))
        log_predictions(db, later, max_rows=settings.max_batch_rows, retention_days=settings.retention_days)
        window_s, detector_s, floor_s = {}, {}, {}
        for w in WINDOWS:
            with db.session() as session:
                window_s[w] = best_of(lambda: queries.window(session, ids[0], last_n=w))  # noqa: B023 - called in this iteration
                current = queries.window(session, ids[0], last_n=w).embeddings
            reference = rng.normal(size=(w, DIM)).astype(np.float32)
            detector = MMDDetector(n_permutations=200, max_samples=2000)
            detector_s[w] = best_of(lambda: detector.fit(reference).test(current), repeats=1)  # noqa: B023 - called in this iteration
            # The floor: one pooled squared-distance matrix (what any kernel two-sample test must build).
            pooled = np.vstack([reference[:2000], current[:2000]])
            floor_s[w] = best_of(lambda: squared_distances(pooled))  # noqa: B023 - called in this iteration
            console.print(f"window {w}: query {window_s[w] * 1e3:.1f} ms, MMD {detector_s[w] * 1e3:.0f} ms")
        results["window_query_s"] = window_s
        results["mmd_fit_test_s"] = detector_s
        results["distance_matrix_floor_s"] = floor_s
        results["ratio_mmd_to_floor"] = {w: detector_s[w] / floor_s[w] for w in WINDOWS}
        results["tick_s"] = {
            v: {w: v * (window_s[w] + detector_s[w]) for w in WINDOWS} for v in (*VERSIONS, 1000)
        }  # 1000: extrapolated, linear in versions (each version's detector is independent)
        db.dispose()
    finally:
        drop_pg_database(url)

    table = Table(title="cost vs window size and model versions (one process, this machine)")
    table.add_column("window W")
    table.add_column("query ms")
    table.add_column("MMD ms")
    for v in (*VERSIONS, 1000):
        table.add_column(f"tick, {v} versions" + (" (extrap.)" if v == 1000 else ""))
    for w in WINDOWS:
        table.add_row(str(w), f"{window_s[w] * 1e3:.1f}", f"{detector_s[w] * 1e3:.0f}",
                      *[f"{results['tick_s'][v][w]:.1f} s" for v in (*VERSIONS, 1000)])  # fmt: skip
    console.print(table)
    ingest_table = Table(title=f"in-process ingest of {INGEST_ROWS:,} rows in batches of 1,000")
    ingest_table.add_column("versions per batch")
    ingest_table.add_column("rows/s")
    ingest_table.add_column("vs 1 version")
    for v in VERSIONS:
        ingest_table.add_row(str(v), f"{ingest[v]['rows_per_s']:,.0f}", f"{ingest[v]['rows_per_s'] / ingest[1]['rows_per_s']:.2f}x")
    console.print(ingest_table)
    out = Path(__file__).parent / "results" / "scaling.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
