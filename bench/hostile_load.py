"""Peak server memory and /health latency under concurrent hostile requests (issues 13 and 27).

``shiftwatch serve`` runs as a subprocess on a fresh SQLite file with the tiny digits ONNX model;
this process sends, all at once: gzip JSON batches that inflate to 60 MiB (over the JSON cap)
and to 15 MiB (under it, so they are parsed), and PNGs whose headers claim 12000x12000 and
20000x20000 pixels; issue 27 adds four 16 MiB JSON bodies of 8.4 M values, two ONNX constant bombs
uploaded and a version registered with a 6000x6000 input_spec (tests/support/hostile.py). It polls /health throughout and reads the server's peak RSS (VmHWM) from
/proc; the peer is the same server's RSS when idle, before the load. Writes
bench/results/hostile_load.json (pass --label before|after to keep both runs in the file).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support imports

from machine import machine_facts

from shiftwatch.db import Database
from shiftwatch.migrate import upgrade
from shiftwatch.settings import Settings
from tests.support.hostile import HealthWatch, hostile_bodies, peak_rss_bytes, send_hostile
from tests.support.pg_processes import ServeProcess
from tests.support.rollout import add_version

RESULTS = Path(__file__).parent / "results" / "hostile_load.json"
MIB = 2**20


def run(label: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        settings = Settings(database_url=url, data_dir=Path(tmp) / "data")
        db = Database.connect(url)
        add_version(db, settings, "v1", state="production")
        db.dispose()
        bodies = hostile_bodies()
        server = ServeProcess(url, settings.data_dir).start()
        try:
            assert server.process is not None
            idle = peak_rss_bytes(server.process.pid)
            started = time.perf_counter()
            with HealthWatch(server.url) as health:
                statuses = send_hostile(server.url, bodies)
            elapsed = time.perf_counter() - started
            peak = peak_rss_bytes(server.process.pid)
        finally:
            server.stop()
    result = {
        "label": label,
        "requests": len(bodies),
        "statuses": statuses,
        "seconds": round(elapsed, 2),
        "idle_rss_mib": round(idle / MIB, 1),
        "peak_rss_mib": round(peak / MIB, 1),
        "peak_vs_idle": round(peak / idle, 2),
        "health_worst_s": round(health.worst_s, 3),
        "health_failures": health.failures,
        "health_polls": len(health.latencies),
        "machine": machine_facts(),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after")
    args = parser.parse_args()
    result = run(args.label)
    print(f"{'run':8} {'requests':>8} {'idle MiB':>9} {'peak MiB':>9} {'peak/idle':>9} {'worst /health s':>15} {'seconds':>8}")
    print(
        f"{result['label']:8} {result['requests']:>8} {result['idle_rss_mib']:>9} {result['peak_rss_mib']:>9} "
        f"{result['peak_vs_idle']:>9} {result['health_worst_s']:>15} {result['seconds']:>8}"
    )
    print("statuses:", result["statuses"])
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = {**previous.get("runs", {}), args.label: result}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
