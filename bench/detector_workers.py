"""Detector work split over worker processes: one tick of 40 model versions with 1 and with 2 `shiftwatch detectors work`.

PostgreSQL on 127.0.0.1:5432 (a database of its own, dropped after); 40 versions of one model,
each with a 2,000-sample pinned reference, a 1,000-sample window and one MMD (200 permutations;
alpha 1e-6, so no run opens an alert and writes a report: the tick is detector work only).
A round: N worker processes idle through one empty tick, then every version gets a fresh config
and the workers wake together at the next tick; its wall time runs from that tick to the last
version's claim finished (a worker woken late joins at the next tick). Peer in the same run: the same round with one worker; rounds
alternate 1, 2, 1, 2 and the medians are compared (the machine is shared: load averages kept).

    .venv/bin/python bench/detector_workers.py [--threads-per-worker 1]

``--threads-per-worker 1`` caps each worker's BLAS/OpenMP threads at one, as on hosts of one core per
worker: without it each worker's NumPy already spreads over both cores here, so a second worker on the
same 2 cores has nothing left to use (the uncapped runs measured 0.97-1.08x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root: tests.support imports
sys.path.insert(0, str(ROOT / "bench"))  # machine.py
# The imports below come after the sys.path line above, hence their E402 noqa.
from machine import load_average, write_result  # noqa: E402

from shiftwatch.db import Database, utcnow  # noqa: E402
from shiftwatch.detectors.tables import DetectorClaim, DetectorConfig, DriftRun  # noqa: E402
from shiftwatch.migrate import upgrade  # noqa: E402
from shiftwatch.settings import Settings  # noqa: E402
from tests.support.databases import create_pg_database, drop_pg_database  # noqa: E402
from tests.support.detector_fleet import WorkerProcess, add_configs, fleet  # noqa: E402

VERSIONS, REFERENCE, WINDOW, PERMUTATIONS, TICK_S = 40, 2000, 1000, 200, 5
ROUNDS = (1, 2, 1, 2)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def start_worker(url: str, data_dir: Path, threads: int | None) -> WorkerProcess:
    """A detector worker process, its math libraries capped at ``threads`` threads when given."""
    process = WorkerProcess(url, data_dir, detector_tick_seconds=str(TICK_S))
    if threads is not None:
        process.env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return process.start()


def one_round(db: Database, url: str, data_dir: Path, version_ids: list[int], n_workers: int, number: int,
              threads: int | None) -> dict:
    """One tick of every version, worked by ``n_workers`` processes; its wall time and who ran what."""
    workers = [start_worker(url, data_dir / f"round{number}-worker{i}", threads) for i in range(n_workers)]
    try:
        for worker in workers:
            worker.wait_for_ticks(1, timeout=120)  # started and idle: they wake at the same tick boundaries
        config_ids = add_configs(db, version_ids, window=WINDOW, permutations=PERMUTATIONS, alpha=1e-6,
                                 name=f"mmd-round{number}")  # fmt: skip
        load_before = load_average()
        deadline = time.monotonic() + 900
        while True:
            with db.session() as session:
                done = session.scalar(select(func.count(func.distinct(DriftRun.config_id))).where(DriftRun.config_id.in_(config_ids)))
            if done == len(config_ids):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"round {number}: {done} of {len(config_ids)} configs ran")
            time.sleep(0.2)
        load_after = load_average()
    finally:
        for worker in workers:
            worker.stop()
    with db.session() as session:
        claims = session.scalars(select(DetectorClaim).where(DetectorClaim.model_version_id.in_(version_ids))).all()
        session.execute(update(DetectorConfig).where(DetectorConfig.id.in_(config_ids)).values(enabled=False))
    # A worker starved past the tick boundary wakes at the next tick and helps with what is left there.
    tick = min(c.tick for c in claims)
    finished = [c.finished_at for c in claims if c.finished_at is not None]
    assert len(finished) == len(version_ids)
    per_worker = {w.worker_id: sum(1 for c in claims if c.claimed_by == w.worker_id) for w in workers}
    return {
        "workers": n_workers,
        "wall_s": round((max(finished) - tick).total_seconds(), 2),
        "ticks_spanned": len({c.tick for c in claims}),
        "versions_per_worker": sorted(per_worker.values(), reverse=True),
        "load_average_before": load_before,
        "load_average_after": load_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads-per-worker", type=int, default=None, help="cap each worker's BLAS/OpenMP threads")
    threads = parser.parse_args().threads_per_worker
    url = create_pg_database("sw_bench_workers")
    try:
        upgrade(url)
        db = Database.connect(url)
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            settings = Settings(database_url=url, data_dir=data_dir, scheduler_enabled=False)
            start = (utcnow() - timedelta(hours=3)).replace(microsecond=0)
            version_ids = fleet(db, settings, VERSIONS, start, reference=REFERENCE, window=WINDOW)
            rounds = [one_round(db, url, data_dir, version_ids, n, i, threads) for i, n in enumerate(ROUNDS)]
        db.dispose()
    finally:
        drop_pg_database(url)
    for r in rounds:
        print(f"{r['workers']} worker(s): tick {r['wall_s']:6.2f} s  versions per worker {r['versions_per_worker']}  "
              f"load {r['load_average_before']} -> {r['load_average_after']}")
    one = statistics.median(r["wall_s"] for r in rounds if r["workers"] == 1)
    two = statistics.median(r["wall_s"] for r in rounds if r["workers"] == 2)
    result = {
        "setup": {"versions": VERSIONS, "reference": REFERENCE, "window": WINDOW, "detector": "mmd",
                  "n_permutations": PERMUTATIONS, "backend": "postgresql (127.0.0.1:5432)",
                  "threads_per_worker": threads or "uncapped"},
        "rounds": rounds,
        "tick_1_worker_s": one,
        "tick_2_workers_s": two,
        "ratio_2_over_1": round(two / one, 3),
        "per_version_1_worker_s": round(one / VERSIONS, 3),
    }
    write_result("detector_workers" if threads is None else f"detector_workers_{threads}thread", result, ("tick_1_worker_s", "tick_2_workers_s", "ratio_2_over_1"))


if __name__ == "__main__":
    main()
