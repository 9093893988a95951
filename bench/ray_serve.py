"""shiftwatch on Ray Serve against the built-in gateway, same run: requests/s and latency at concurrency 1 and 16.

Both serve the same int8 digits CNN (bench/gateway.py builds and registers it) with the same PNG bodies,
through the same Gateway (routing, decoding, logging every prediction): the built-in one as a uvicorn
subprocess, the Ray one as a Ray Serve application on a local Ray instance (router deployment + one
version deployment, ``@serve.batch`` 32 / 5 ms). The load generator is bench/gateway.py's closed-loop
keep-alive client; rounds interleave the two servers. Writes bench/results/ray_serve.json.

    python bench/ray_serve.py [--rounds 3] [--ray-cpus 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway as gw  # the digits models, the load generator and the built-in server
from machine import load_average, write_result

CONCURRENCY = (1, 16)


def start_ray(root: Path, port: int, cpus: int) -> tuple[float, object]:
    """A local Ray instance serving the application; returns its start-up seconds and the router's handle."""
    import ray
    from ray import serve

    from shiftwatch.rollout.ray_serve import APP_NAME, build_app
    from shiftwatch.settings import Settings

    data_dir = root / "ray"
    url = f"sqlite:///{root / 'ray.db'}"
    gw.prepare(url, data_dir)
    settings = Settings(database_url=url, data_dir=data_dir, scheduler_enabled=False, auth_required=False,
                        gateway_max_batch_size=32, gateway_max_wait_ms=5)
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    handle = serve.run(build_app(settings, "digits"), name=APP_NAME, route_prefix="/")
    return time.perf_counter() - started, handle


def warm(port: int, payload: bytes) -> None:
    import httpx

    httpx.post(f"http://127.0.0.1:{port}/v1/models/digits/predict", content=payload,
               headers={"content-type": "image/png"}, timeout=60).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=gw.ROUNDS)
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs the local Ray instance may schedule")
    args = parser.parse_args()
    load_at_start = load_average()
    payloads = gw.png_payloads(256)
    base_port = 19000 + os.getpid() % 1000
    measured: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        builtin = gw.Server("builtin", Path(tmp), 32, False, base_port)
        try:
            builtin.ready(payloads[0])
            ray_start_s, handle = start_ray(Path(tmp), base_port + 1, args.ray_cpus)
            warm(base_port + 1, payloads[0])
            ports = {"builtin": base_port, "ray": base_port + 1}
            for _ in range(args.rounds):
                for concurrency in CONCURRENCY:
                    for name, port in ports.items():
                        row = asyncio.run(gw.level(port, payloads, concurrency))
                        measured.setdefault((name, concurrency), []).append(row)
            ray_logged = handle.stats.remote("digits").result(timeout_s=60)  # type: ignore[attr-defined]
            builtin_logged = builtin.stats()
        finally:
            builtin.stop()
            from ray import serve

            serve.shutdown()
    levels = {f"{name}_c{c}": gw.pooled(rows) for (name, c), rows in measured.items()}
    ratios = {f"builtin_over_ray_c{c}": levels[f"builtin_c{c}"]["throughput_rps"] / levels[f"ray_c{c}"]["throughput_rps"]
              for c in CONCURRENCY}
    write_result("ray_serve", {
        "what": "requests/s of the built-in gateway and of shiftwatch on Ray Serve, same model, bodies and logging, same run",
        "ray_cpus": args.ray_cpus,
        "ray_start_s": round(ray_start_s, 1),
        "levels": levels,
        "ratios": ratios,
        "logged": {"builtin": builtin_logged.get("log_written"), "ray": ray_logged["log_written"]},
        "load_average_start": load_at_start,
        "load_average_end": load_average(),
    }, headline=("ratios", "ray_start_s"))


if __name__ == "__main__":
    main()
