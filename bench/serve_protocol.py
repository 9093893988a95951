"""What ``shiftwatch serve``'s bounded h11 protocol costs against uvicorn's default (httptools), same run.

Both servers run the same app in this process (a thread each, started in turn); 8 concurrent
keep-alive clients send GET /health, the cheapest route, so the figure bounds the parser's
share of any request. Rounds alternate. Writes bench/results/serve_protocol.json.

    python bench/serve_protocol.py [--rounds 3] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support imports
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import write_result

from shiftwatch.app import create_app
from shiftwatch.db import Database
from shiftwatch.migrate import upgrade
from shiftwatch.settings import Settings
from tests.support.servers import LiveServer

CLIENTS = 8


async def hammer(url: str, requests: int) -> float:
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_keepalive_connections=CLIENTS)) as client:
        async def worker(n: int) -> None:
            for _ in range(n):
                assert (await client.get("/health")).status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*[worker(requests // CLIENTS) for _ in range(CLIENTS)])
        return (requests // CLIENTS * CLIENTS) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"bounded_h11": [], "uvicorn_default": []}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        settings = Settings(database_url=url, data_dir=Path(tmp) / "data", scheduler_enabled=False)
        db = Database.connect(url)
        for i in range(args.rounds):
            for kind in ("bounded_h11", "uvicorn_default") if i % 2 == 0 else ("uvicorn_default", "bounded_h11"):
                server = LiveServer(create_app(settings, db), settings=settings if kind == "bounded_h11" else None)
                server.start()
                try:
                    rates[kind].append(asyncio.run(hammer(server.url, args.requests)))
                finally:
                    server.stop()
    median = {kind: float(np.median(v)) for kind, v in rates.items()}
    result = {
        "clients": CLIENTS,
        "requests_per_round": args.requests,
        "requests_per_second": {kind: [round(v) for v in values] for kind, values in rates.items()},
        "median_requests_per_second": {kind: round(v) for kind, v in median.items()},
        "bounded_over_default": round(median["bounded_h11"] / median["uvicorn_default"], 3),
        "note": "client and server share the machine's cores; GET /health bounds the parser's share of a request",
    }
    write_result("serve_protocol", result, ("median_requests_per_second", "bounded_over_default"))


if __name__ == "__main__":
    main()
