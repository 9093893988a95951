"""Ingest throughput: SDK -> HTTP API -> PostgreSQL, against a raw psycopg COPY of the same rows.

512-d float32 embeddings, 10-class probabilities, batches of 256, a real `shiftwatch serve`
in a second process. Prints a table and writes bench/results/ingest.json.

    python bench/ingest.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support imports
from shiftwatch.collector import registry
from shiftwatch.collector.ingest import COLUMNS, COPY_TYPES
from shiftwatch.collector.partitions import ensure_upcoming_partitions
from shiftwatch.db import Database
from shiftwatch.migrate import upgrade
from shiftwatch_client.client import Client
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.servers import free_port

DIM, CLASSES, BATCH = 512, 10, 256
console = Console()


def start_server(url: str, port: int, tmp: Path) -> subprocess.Popen:
    # Auth off on loopback: the figures in README.md were measured without token checks.
    env = {**os.environ, "SHIFTWATCH_DATABASE_URL": url, "SHIFTWATCH_SCHEDULER_ENABLED": "false",
           "SHIFTWATCH_DATA_DIR": str(tmp), "SHIFTWATCH_AUTH_REQUIRED": "false"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-c", "from shiftwatch.cli import main; main()", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    import http.client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start: " + process.stderr.read().decode()[-2000:])


def sdk_run(url: str, seconds: float, pool: np.ndarray, probs: np.ndarray, tmp: Path) -> dict:
    latencies = []
    client = Client(url, batch_size=BATCH, spill_dir=tmp / "spill", max_buffer=10**7)
    n = 0
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("SDK -> API -> PostgreSQL", total=seconds)
        while (elapsed := time.perf_counter() - started) < seconds:
            # Pace to the sender: keep at most a few batches queued, as a steady producer would.
            if len(client._queue) > 8 * BATCH:
                time.sleep(0.001)
                continue
            i = n % len(pool)
            t0 = time.perf_counter_ns()
            client.log("bench", "v1", int(probs[i].argmax()), float(probs[i].max()), embedding=pool[i],
                       probabilities=probs[i], request_id=str(n), stream_id="cam-1", latency_ms=1.0)  # fmt: skip
            latencies.append(time.perf_counter_ns() - t0)
            n += 1
            if n % 5000 == 0:
                progress.update(task, completed=elapsed)
    client.flush(timeout=600)
    total = time.perf_counter() - started
    client.close()
    lat = np.asarray(latencies) / 1e6
    return {
        "logged": n, "stored": client.stats.stored, "seconds": total, "per_second": client.stats.stored / total,
        "log_p50_ms": float(np.percentile(lat, 50)), "log_p99_ms": float(np.percentile(lat, 99)),
        "spilled_batches": client.stats.spilled_batches, "rejected_batches": client.stats.rejected_batches,
    }  # fmt: skip


def copy_run(
    url: str, version_id: int, rows: int, pool: np.ndarray, probs: np.ndarray, per_commit: int, with_ids: bool = False
) -> dict:
    """The peer: psycopg binary COPY of the same rows straight into the same partitioned table,
    committing every ``per_commit`` rows (the whole run in one transaction when it is ``rows``).
    ``with_ids`` also COPYs each id into ``prediction_ids``, as ingest does: the id key's cost."""
    now = datetime.now(UTC)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    with psycopg.connect(conninfo) as connection:
        for first in range(0, rows, per_commit):
            ids = [uuid.uuid4() for _ in range(first, min(first + per_commit, rows))]
            with connection.transaction(), connection.cursor() as cursor:
                if with_ids:
                    with cursor.copy("COPY prediction_ids (id, ts) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(["uuid", "timestamptz"])
                        for pid in ids:
                            copy.write_row((pid, now))
                with cursor.copy(f"COPY predictions ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(list(COPY_TYPES))
                    for pid, n in zip(ids, range(first, rows)):
                        i = n % len(pool)
                        copy.write_row((pid, now, version_id, "production", str(n), "cam-1",
                                        int(probs[i].argmax()), float(probs[i].max()), probs[i].tobytes(),
                                        pool[i].tobytes(), None, 1.0, now))  # fmt: skip
    seconds = time.perf_counter() - started
    return {"rows": rows, "rows_per_commit": per_commit, "with_ids": with_ids, "seconds": seconds,
            "per_second": rows / seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    tmp = Path("/tmp") / f"sw-bench-ingest-{os.getpid()}"
    tmp.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(4096, DIM)).astype(np.float32)
    probs = rng.dirichlet(np.ones(CLASSES), size=4096).astype(np.float32)

    url = create_pg_database("sw_bench")
    try:
        upgrade(url)
        db = Database.connect(url)
        with db.session() as session:
            registry.register_model(session, "bench", [str(i) for i in range(CLASSES)])
            version = registry.register_version(session, "bench", "v1", embedding_dim=DIM, state="production")
        ensure_upcoming_partitions(db.engine, 1)
        port = free_port()
        server = start_server(url, port, tmp)
        try:
            sdk = sdk_run(f"http://127.0.0.1:{port}", args.seconds, pool, probs, tmp)
        finally:
            server.terminate()
            server.wait(timeout=30)
        # Two peers: one long COPY (one transaction, the fastest the table takes rows), and COPY
        # committed per 256-row batch (what acknowledging each batch durably costs).
        copy = copy_run(url, version.id, sdk["stored"], pool, probs, per_commit=sdk["stored"])
        copy_batched = copy_run(url, version.id, sdk["stored"], pool, probs, per_commit=BATCH)
        # The id key (prediction_ids, one row per id, same transaction): its cost against the same COPY,
        # which runs again after it so a table grown by the earlier runs does not favour either side.
        copy_batched_ids = copy_run(url, version.id, sdk["stored"], pool, probs, per_commit=BATCH, with_ids=True)
        copy_batched_again = copy_run(url, version.id, sdk["stored"], pool, probs, per_commit=BATCH)
        db.dispose()
    finally:
        drop_pg_database(url)

    result = {
        "benchmark": "ingest",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "embedding_dim": DIM, "batch_size": BATCH,
        "sdk_http_postgres": sdk, "raw_copy_postgres": copy, "raw_copy_per_batch_postgres": copy_batched,
        "raw_copy_per_batch_with_ids_postgres": copy_batched_ids, "raw_copy_per_batch_again": copy_batched_again,
        "ratio_to_raw_copy": sdk["per_second"] / copy["per_second"],
        "ratio_to_raw_copy_per_batch": sdk["per_second"] / copy_batched["per_second"],
        "id_key_ratio": copy_batched_ids["per_second"]
        / ((copy_batched["per_second"] + copy_batched_again["per_second"]) / 2),
        "targets": {"per_second": 10_000, "ratio_to_raw_copy": 0.5, "log_p99_ms": 1.0},
    }  # fmt: skip
    table = Table(title=f"ingest, {DIM}-d embeddings, batches of {BATCH}")
    for column in ("path", "rows", "rows/s", "log() p99 ms"):
        table.add_column(column)
    table.add_row("SDK -> HTTP -> PostgreSQL", str(sdk["stored"]), f"{sdk['per_second']:,.0f}", f"{sdk['log_p99_ms']:.3f}")
    table.add_row("raw psycopg COPY, one transaction", str(copy["rows"]), f"{copy['per_second']:,.0f}", "-")
    table.add_row(f"raw psycopg COPY, commit per {BATCH}", str(copy_batched["rows"]),
                  f"{copy_batched['per_second']:,.0f}", "-")  # fmt: skip
    table.add_row(f"raw COPY + prediction_ids, commit per {BATCH}", str(copy_batched_ids["rows"]),
                  f"{copy_batched_ids['per_second']:,.0f}", "-")  # fmt: skip
    table.add_row("SDK / COPY one transaction", "", f"{result['ratio_to_raw_copy']:.2f}x", "")
    table.add_row(f"SDK / COPY commit per {BATCH}", "", f"{result['ratio_to_raw_copy_per_batch']:.2f}x", "")
    table.add_row("COPY with ids / without (per batch)", "", f"{result['id_key_ratio']:.2f}x", "")
    console.print(table)
    out = Path(__file__).parent / "results" / "ingest.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
