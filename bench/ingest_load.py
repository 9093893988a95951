"""Sustained ingest load from a second process against `shiftwatch serve` on PostgreSQL.

Two phases, each bounded in batches and seconds:
  paced:     a steady open-loop inflow (batches sent on a schedule, not as fast as answers come),
             the shape of a fleet of gateways; reports request latency p50/p99.
  overload:  as fast as 16 senders can go against a server allowed 2 batches in flight;
             the server must answer 503 + Retry-After rather than queue, senders wait as told.
Then every row sent is counted in the database: nothing may be lost or stored twice.
Peer, same run: a raw psycopg binary COPY of the same number of rows (ratio = throughput / COPY).

    python bench/ingest_load.py [--seconds 12] [--rate 30]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support imports
from shiftwatch.collector import registry
from shiftwatch.db import Database
from shiftwatch.migrate import upgrade
from shiftwatch_client import wire
from shiftwatch_client.records import PredictionRecord, to_columns
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.pg_processes import ServeProcess

DIM, CLASSES, ROWS_PER_BATCH = 128, 10, 100
console = Console()


def make_bodies(n_batches: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(n_batches):
        probs = rng.dirichlet(np.ones(CLASSES), size=ROWS_PER_BATCH).astype(np.float32)
        embeddings = rng.normal(size=(ROWS_PER_BATCH, DIM)).astype(np.float32)
        records = [
            PredictionRecord("load", "v1", int(p.argmax()), float(p.max()), embedding=e, probabilities=p, latency_ms=2.0)
            for p, e in zip(probs, embeddings)
        ]
        bodies.append(wire.encode(to_columns(records)))
    return bodies


class Sender:
    """Posts bodies from a shared list; on 503/429 waits Retry-After and sends the same body again."""

    def __init__(self, port: int, bodies: list[bytes], schedule: list[float] | None, deadline: float) -> None:
        self.port, self.bodies, self.schedule, self.deadline = port, bodies, schedule, deadline
        self.next_index = 0
        self.lock = threading.Lock()
        self.latencies_ms: list[float] = []
        self.sent = self.refused = self.failed = 0
        self.retry_after_waited_s = 0.0

    def take(self) -> int | None:
        with self.lock:
            if self.next_index >= len(self.bodies) or time.monotonic() > self.deadline:
                return None
            self.next_index += 1
            return self.next_index - 1

    def run(self, started: float) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": wire.CONTENT_TYPE}
        while (index := self.take()) is not None:
            if self.schedule is not None:  # open loop: send at the scheduled moment, late or not
                delay = started + self.schedule[index] - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            while True:
                t0 = time.perf_counter()
                try:
                    connection.request("POST", "/v1/predictions", body=self.bodies[index], headers=headers)
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    with self.lock:
                        self.failed += 1
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                    time.sleep(0.1)
                    continue
                elapsed_ms = (time.perf_counter() - t0) * 1e3
                if response.status in (429, 503):
                    wait = float(response.getheader("Retry-After") or 1)
                    with self.lock:
                        self.refused += 1
                        self.retry_after_waited_s += wait
                    time.sleep(wait)
                    continue
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
                with self.lock:
                    self.latencies_ms.append(elapsed_ms)
                    self.sent += 1
                break
        connection.close()


def run_phase(port: int, bodies: list[bytes], threads: int, rate: float | None, seconds: float) -> dict:
    schedule = [i / rate for i in range(len(bodies))] if rate else None
    started = time.monotonic()
    sender = Sender(port, bodies, schedule, deadline=started + seconds)
    workers = [threading.Thread(target=sender.run, args=(started,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    lat = np.asarray(sender.latencies_ms)
    return {
        "threads": threads, "target_batches_per_s": rate, "batches_sent": sender.sent,
        "rows_sent": sender.sent * ROWS_PER_BATCH, "seconds": elapsed,
        "rows_per_s": sender.sent * ROWS_PER_BATCH / elapsed,
        "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p99_ms": float(np.percentile(lat, 99)),
        "latency_max_ms": float(lat.max()), "refused_503": sender.refused, "connection_errors": sender.failed,
        "retry_after_waited_s": sender.retry_after_waited_s,
    }  # fmt: skip


def copy_peer(url: str, version_id: int, rows: int) -> dict:
    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    emb = rng.normal(size=(1024, DIM)).astype(np.float32)
    probs = rng.dirichlet(np.ones(CLASSES), size=1024).astype(np.float32)
    columns = "id, ts, model_version_id, route, predicted_class, confidence, probabilities, embedding, latency_ms, received_at"
    started = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection, connection.cursor() as cur:
        with cur.copy(f"COPY predictions ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "timestamptz", "int4", "varchar", "int4", "float8", "bytea", "bytea", "float8", "timestamptz"])
            for n in range(rows):
                i = n % 1024
                copy.write_row((uuid.uuid4(), now, version_id, "production", int(probs[i].argmax()), float(probs[i].max()),
                                probs[i].tobytes(), emb[i].tobytes(), 2.0, now))  # fmt: skip
        connection.execute("DELETE FROM predictions WHERE latency_ms = 2.0 AND request_id IS NULL AND input_ref IS NULL "
                           "AND received_at = %s", (now,))  # fmt: skip
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=12, help="upper bound per phase")
    parser.add_argument("--rate", type=float, default=30, help="paced phase: batches of 100 rows per second")
    args = parser.parse_args()
    tmp = Path("/tmp") / f"sw-bench-load-{os.getpid()}"
    url = create_pg_database("sw_bench_load")
    results: dict = {"benchmark": "ingest_load", "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                     "embedding_dim": DIM, "rows_per_batch": ROWS_PER_BATCH}  # fmt: skip
    try:
        upgrade(url)
        db = Database.connect(url)
        with db.session() as session:
            registry.register_model(session, "load", [str(i) for i in range(CLASSES)])
            version = registry.register_version(session, "load", "v1", embedding_dim=DIM, state="production")
        paced_bodies = make_bodies(int(args.rate * args.seconds), seed=1)
        overload_bodies = make_bodies(600, seed=2)
        # paced: the default gate (8 batches in flight); overload: a gate of 2 against 16 senders.
        for phase, gate, bodies, threads, rate in (
            ("paced", "8", paced_bodies, 8, args.rate),
            ("overload", "2", overload_bodies, 16, None),
        ):
            server = ServeProcess(url, tmp, max_inflight_batches=gate).start()
            try:
                console.print(f"{phase} phase ...")
                results[phase] = run_phase(server.port, bodies, threads=threads, rate=rate, seconds=args.seconds)
                results[phase]["max_inflight_batches"] = int(gate)
            finally:
                server.stop()
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
            stored = connection.execute("SELECT count(*), count(DISTINCT id) FROM predictions").fetchone()
        sent = results["paced"]["rows_sent"] + results["overload"]["rows_sent"]
        results["rows_sent_total"], results["rows_stored"], results["distinct_ids_stored"] = sent, stored[0], stored[1]
        results["lost"] = sent - stored[1]
        results["raw_copy_peer"] = copy_peer(url, version.id, results["paced"]["rows_sent"])
        # The paced phase runs at the rate asked for, so only the saturated one says something next to COPY.
        results["ratio_overload_to_copy"] = results["overload"]["rows_per_s"] / results["raw_copy_peer"]["rows_per_s"]
        db.dispose()
    finally:
        drop_pg_database(url)

    table = Table(title=f"ingest under load: batches of {ROWS_PER_BATCH} x {DIM}-d, `shiftwatch serve` + PostgreSQL")
    for column in ("phase", "rows/s", "p50 ms", "p99 ms", "503s", "vs COPY"):
        table.add_column(column)
    for phase in ("paced", "overload"):
        r = results[phase]
        table.add_row(phase, f"{r['rows_per_s']:,.0f}", f"{r['latency_p50_ms']:.1f}", f"{r['latency_p99_ms']:.1f}",
                      str(r["refused_503"]), f"{results.get(f'ratio_{phase}_to_copy', 0):.2f}x" if phase == "overload" else "-")  # fmt: skip
    table.add_row("raw COPY peer", f"{results['raw_copy_peer']['rows_per_s']:,.0f}", "", "", "", "1.00x")
    console.print(table)
    console.print(f"sent {results['rows_sent_total']:,} rows, stored {results['rows_stored']:,}, lost {results['lost']}")
    out = Path(__file__).parent / "results" / "ingest_load.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {out}")
    if results["lost"] != 0 or results["rows_stored"] != results["rows_sent_total"]:
        raise SystemExit("rows were lost or stored twice")


if __name__ == "__main__":
    main()
