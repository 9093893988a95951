"""Ingest through NATS JetStream against the direct path, same run: rows/s, and which stage is the bottleneck.

512-d float32 embeddings, 10-class probabilities, batches of 256 POSTed as ``.npz`` by 2 client
threads to a real ``shiftwatch serve`` (a second process), real PostgreSQL, real NATS with JetStream
(127.0.0.1:4222, a stream no one else uses). Each path gets fresh ids:

- direct: the API stores each batch before answering (the default);
- broker end to end, 1 and 2 ``shiftwatch ingest-worker`` processes: first POST to last row stored;
- per stage: the API's publish rate with no worker running (the stream fills), each worker count's
  drain of that stream, and the store alone (``wire.decode`` + ``ingest`` in this process).

    python bench/ingest_broker.py [--batches 40]
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support imports
from machine import write_result  # bench/machine.py: this script's folder is on sys.path

from shiftwatch.collector import registry, wire
from shiftwatch.collector.ingest import ingest
from shiftwatch.collector.partitions import ensure_upcoming_partitions
from shiftwatch.db import Database
from shiftwatch.migrate import upgrade
from shiftwatch_client.records import PredictionRecord, to_columns
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.servers import free_port

DIM, CLASSES, BATCH, SENDERS = 512, 10, 256, 2
NATS_URL = os.environ.get("SHIFTWATCH_BENCH_NATS_URL", "nats://127.0.0.1:4222")


def bodies(n_batches: int, seed: int) -> list[bytes]:
    """Encoded batches of fresh rows (new ids each call)."""
    from datetime import UTC, datetime

    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    out = []
    for _ in range(n_batches):
        probs = rng.dirichlet(np.ones(CLASSES), size=BATCH).astype(np.float32)
        emb = rng.normal(size=(BATCH, DIM)).astype(np.float32)
        rows = [PredictionRecord(model="bench", version="v1", predicted_class=int(p.argmax()), confidence=float(p.max()),
                                 embedding=e, probabilities=p, request_id=str(uuid.uuid4()), stream_id="cam-1",
                                 latency_ms=1.0, ts=now) for p, e in zip(probs, emb)]  # fmt: skip
        out.append(wire.encode(to_columns(rows)))
    return out


def post_all(port: int, batches: list[bytes]) -> float:
    """POST every batch (SENDERS threads, keep-alive); seconds until the last answer. Any non-2xx fails the run."""
    queue = list(enumerate(batches))
    lock = threading.Lock()
    failures: list[str] = []

    def send() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not queue:
                    return
                _, body = queue.pop(0)
            connection.request("POST", "/v1/predictions?partial=true", body=body,
                               headers={"content-type": wire.CONTENT_TYPE})  # fmt: skip
            answer = connection.getresponse()
            text = answer.read()
            if answer.status not in (200, 202):
                failures.append(f"{answer.status} {text[:200]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=send) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} batches refused, first: {failures[0]}")
    return time.perf_counter() - started


def count(db: Database) -> int:
    """Rows stored: counted on the narrow id table (one per stored row), so polling costs the store little."""
    from sqlalchemy import func, select

    from shiftwatch.collector.tables import PredictionId

    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(PredictionId)))


def wait_for(db: Database, target: int, timeout_s: float = 600) -> float:
    started = time.perf_counter()
    while count(db) < target:
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"only {count(db)} of {target} rows stored")
        time.sleep(0.2)
    return time.perf_counter() - started


def env(url: str, tmp: Path, broker: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "SHIFTWATCH_DATABASE_URL": url, "SHIFTWATCH_SCHEDULER_ENABLED": "false",
            "SHIFTWATCH_DATA_DIR": str(tmp), "SHIFTWATCH_AUTH_REQUIRED": "false", **(broker or {})}  # fmt: skip


def start(args: list[str], environment: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shiftwatch", *args], env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def wait_pulling(broker: dict[str, str], workers: int) -> None:
    """Until ``workers`` pull requests wait on the consumer: each worker has started and asks for work."""
    from tests.support.nats_servers import wait_pulling as pulling

    pulling(NATS_URL, broker["SHIFTWATCH_INGEST_BROKER_STREAM"], broker["SHIFTWATCH_INGEST_BROKER_CONSUMER"], workers)


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


def store_profile(db: Database, batches: list[bytes]) -> dict[str, float]:
    """Share of the store stage's time in each step (cProfile, cumulative; it inflates Python-heavy steps)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    store_alone(db, batches)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    steps = {"decode": ("collector/wire.py", "decode"), "check": ("collector/ingest.py", "check"),
             "rows_to_dicts": ("collector/ingest.py", "_rows"), "copy": ("collector/ingest.py", "_copy_postgres"),
             "partitions": ("collector/partitions.py", "ensure_partitions"),
             "commit": ("sqlalchemy/engine/base.py", "_commit_impl")}  # fmt: skip

    def seconds(where: tuple[str, str]) -> float:
        return sum(v[3] for (path, _, fn), v in stats.items() if fn == where[1] and path.endswith(where[0]))

    cumulative = {name: seconds(where) for name, where in steps.items()}
    total = seconds(("ingest_broker.py", "store_alone"))
    return {name: round(value / total, 3) for name, value in cumulative.items()}


def store_alone(db: Database, batches: list[bytes]) -> dict:
    """The worker's store stage in this process, timed per step: decode, then validate + COPY + commit."""
    decode_s = ingest_s = 0.0
    for body in batches:
        t0 = time.perf_counter()
        batch = wire.decode(body, max_unpacked_bytes=64 << 20)
        t1 = time.perf_counter()
        ingest(db, [(batch, None)], max_rows=BATCH, retention_days=30, partial=True)
        ingest_s += time.perf_counter() - t1
        decode_s += t1 - t0
    rows = len(batches) * BATCH
    return {"rows": rows, "decode_s": decode_s, "ingest_s": ingest_s, "per_second": rows / (decode_s + ingest_s),
            "decode_ms_per_batch": 1000 * decode_s / len(batches),
            "ingest_ms_per_batch": 1000 * ingest_s / len(batches)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=40, help="batches of 256 rows per measured path")
    args = parser.parse_args()
    rows = args.batches * BATCH
    tmp = Path("/tmp") / f"sw-bench-broker-{os.getpid()}"
    tmp.mkdir(parents=True)
    tag = uuid.uuid4().hex[:10]
    broker = {"SHIFTWATCH_INGEST_BROKER_URL": NATS_URL, "SHIFTWATCH_INGEST_BROKER_STREAM": f"BENCH_{tag}",
              "SHIFTWATCH_INGEST_BROKER_SUBJECT": f"bench.{tag}", "SHIFTWATCH_INGEST_BROKER_CONSUMER": f"w-{tag}"}
    url = create_pg_database("sw_bench_broker")
    results: dict = {}
    try:
        upgrade(url)
        db = Database.connect(url)
        with db.session() as session:
            registry.register_model(session, "bench", [str(i) for i in range(CLASSES)])
            registry.register_version(session, "bench", "v1", embedding_dim=DIM, state="production")
        ensure_upcoming_partitions(db.engine, 1)
        store_alone(db, bodies(4, seed=999))  # warm-up: the version cache, the partition, the connections
        seed = iter(range(1, 100))
        direct_port, broker_port = free_port(), free_port()
        servers = [start(["serve", "--port", str(direct_port)], env(url, tmp / "direct", None)),
                   start(["serve", "--port", str(broker_port)], env(url, tmp / "broker", broker))]
        try:
            wait_healthy(direct_port)
            wait_healthy(broker_port)
            post_all(direct_port, bodies(4, seed=998))  # warm-up of both servers
            base = count(db)
            post_all(broker_port, bodies(4, seed=997))
            warm = start(["ingest-worker"], env(url, tmp, broker))
            wait_for(db, base + 4 * BATCH, timeout_s=120)
            stop([warm])
            for workers in (1, 2):
                results[f"direct_{workers}"] = {"seconds": post_all(direct_port, bodies(args.batches, next(seed)))}
                # end to end: workers running while the API publishes
                base = count(db)
                procs = [start(["ingest-worker"], env(url, tmp, broker)) for _ in range(workers)]
                wait_pulling(broker, workers)  # their start-up (imports, connections) is not their rate
                started = time.perf_counter()
                post_all(broker_port, bodies(args.batches, next(seed)))
                wait_for(db, base + rows)
                results[f"broker_{workers}_end_to_end"] = {"seconds": time.perf_counter() - started}
                stop(procs)
                # per stage: publish with no worker (the stream fills), then the workers' drain
                base = count(db)
                results[f"publish_{workers}"] = {"seconds": post_all(broker_port, bodies(args.batches, next(seed)))}
                procs = [start(["ingest-worker"], env(url, tmp, broker)) for _ in range(workers)]
                wait_for(db, base + 1)  # timed from the first commit: the workers' start-up is not their rate
                first = count(db) - base
                results[f"drain_{workers}"] = {"seconds": wait_for(db, base + rows), "rows": rows - first}
                results[f"drain_{workers}"]["per_second"] = (rows - first) / results[f"drain_{workers}"]["seconds"]
                stop(procs)
        finally:
            stop(servers)
        results["store_alone"] = store_alone(db, bodies(args.batches, next(seed)))
        profile = store_profile(db, bodies(args.batches // 2, next(seed)))
        db.dispose()
    finally:
        drop_pg_database(url)
    for value in results.values():
        if "per_second" not in value:
            value["per_second"] = rows / value["seconds"]
    direct = (results["direct_1"]["per_second"] + results["direct_2"]["per_second"]) / 2
    summary = {
        "direct_rows_per_s": direct,
        "broker_1_worker_rows_per_s": results["broker_1_end_to_end"]["per_second"],
        "broker_2_workers_rows_per_s": results["broker_2_end_to_end"]["per_second"],
        "ratio_broker_1_worker_to_direct": results["broker_1_end_to_end"]["per_second"] / direct,
        "ratio_broker_2_workers_to_direct": results["broker_2_end_to_end"]["per_second"] / direct,
        "ratio_2_workers_to_1": results["broker_2_end_to_end"]["per_second"] / results["broker_1_end_to_end"]["per_second"],
        "stages_rows_per_s": {
            "api_validate_and_publish": (results["publish_1"]["per_second"] + results["publish_2"]["per_second"]) / 2,
            "drain_1_worker": results["drain_1"]["per_second"],
            "drain_2_workers": results["drain_2"]["per_second"],
            "store_alone_in_process": results["store_alone"]["per_second"],
        },
    }  # fmt: skip
    summary["store_stage_time_shares"] = profile
    stages = summary["stages_rows_per_s"]
    summary["bottleneck"] = min(("api_validate_and_publish", "drain_1_worker"), key=lambda k: stages[k])
    write_result("ingest_broker", {"benchmark": "ingest_broker", "embedding_dim": DIM, "batch_size": BATCH,
                                   "senders": SENDERS, "rows_per_path": rows, "nats_url": NATS_URL,
                                   **summary, "runs": results},
                 headline=("direct_rows_per_s", "broker_1_worker_rows_per_s", "broker_2_workers_rows_per_s",
                           "ratio_broker_1_worker_to_direct", "ratio_broker_2_workers_to_direct", "bottleneck"))  # fmt: skip


if __name__ == "__main__":
    main()
