"""Gateway throughput and latency: dynamic batching vs one ORT call per request, and the shadow's overhead.

A real uvicorn (``python bench/gateway.py serve``, a subprocess) serves the compressed digits CNN
(int8 ONNX); this process is the load generator: closed-loop clients over keep-alive HTTP/1.1 on loopback
(a minimal asyncio client, so the load generator is not the bottleneck), each level bounded by a
request count and a time limit. Three server runs: unbatched (max batch 1), batched (32 / 5 ms),
batched with a candidate in shadow. Writes bench/results/gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "gateway.json"
CONCURRENCY = (1, 8, 32)
ROUNDS = 3
MAX_REQUESTS = 3000  # per level and round; with MAX_SECONDS this bounds the run to about a minute
MAX_SECONDS = 1.5
WARMUP_SECONDS = 0.3


def serve(port: int) -> None:
    """The server side: settings come from SHIFTWATCH_* variables set by the parent."""
    import uvicorn

    from shiftwatch.app import create_app
    from shiftwatch.settings import load_settings

    uvicorn.run(create_app(load_settings()), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def build_models(data_dir: Path) -> dict[str, str]:
    """The compressed digits model: the reference CNN exported to ONNX, then static int8 PTQ (retrain.quantize).

    Two seeds (production v1, candidate v2). Weights are untrained: serving cost does not depend on
    them, and training would add a minute to every run. Returns version -> sha256.
    """
    import torch

    from shiftwatch.artifacts import sha256_file
    from shiftwatch.examples.digits import load_digits_images
    from shiftwatch.examples.digits_cnn import DigitsCNN
    from shiftwatch.retrain.export import export_onnx
    from shiftwatch.retrain.quantize import quantize_int8
    from shiftwatch.retrain.torch_contract import ContractModel

    images, _ = load_digits_images()
    shas = {}
    for seed, version in ((0, "v1"), (1, "v2")):
        torch.manual_seed(seed)
        fp32 = export_onnx(ContractModel(DigitsCNN()), data_dir / "models" / f"{version}-fp32.onnx")
        path = quantize_int8(fp32, data_dir / "models" / f"{version}.onnx", images[:256])
        shas[version] = sha256_file(path)
    return shas


def prepare(url: str, data_dir: Path) -> None:
    from shiftwatch.collector import registry
    from shiftwatch.db import Database
    from shiftwatch.examples.digits import CLASS_NAMES, INPUT_SPEC
    from shiftwatch.migrate import upgrade

    upgrade(url)
    shas = build_models(data_dir)
    db = Database.connect(url)
    with db.session() as session:
        registry.register_model(session, "digits", CLASS_NAMES)
        for version, state in (("v1", "production"), ("v2", "candidate")):
            registry.register_version(session, "digits", version, embedding_dim=64, artifact_path=f"models/{version}.onnx",
                                      artifact_sha256=shas[version], input_spec=INPUT_SPEC, state=state)
    db.dispose()


def start_shadow(url: str, data_dir: Path) -> None:
    from shiftwatch.db import Database
    from shiftwatch.rollout import controller
    from shiftwatch.rollout.schemas import RolloutPlan
    from shiftwatch.settings import Settings

    settings = Settings(database_url=url, data_dir=data_dir)
    db = Database.connect(url)
    with db.session() as session:
        controller.start_rollout(session, settings.data_dir, "digits", "v2", RolloutPlan(), actor="bench")
    db.dispose()


def png_payloads(n: int) -> list[bytes]:
    from PIL import Image

    from shiftwatch.examples.digits import load_digits_images

    images, _ = load_digits_images()
    payloads = []
    for image in images[:n]:
        buffer = io.BytesIO()
        Image.fromarray((image[0] * 255).astype(np.uint8)).save(buffer, format="PNG")
        payloads.append(buffer.getvalue())
    return payloads


HEALTH = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


async def client(port: int, payloads: list[bytes], stop_at: float, record_from: float, latencies: list[float],
                 budget: list[int], worker: int, health_only: bool = False) -> None:
    """One closed-loop client on one keep-alive connection (``health_only``: the HTTP floor, no model)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = worker
    try:
        while time.perf_counter() < stop_at and budget[0] > 0:
            body = payloads[i % len(payloads)]
            i += 1
            request = (
                f"POST /v1/models/digits/predict HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: image/png\r\n"
                f"x-client-key: client-{worker}\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode() + body
            if health_only:
                request = HEALTH
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            if started >= record_from:
                latencies.append((time.perf_counter() - started) * 1000.0)
                budget[0] -= 1
    finally:
        writer.close()


async def level(port: int, payloads: list[bytes], concurrency: int, health_only: bool = False) -> dict:
    now = time.perf_counter()
    record_from = now + WARMUP_SECONDS
    latencies: list[float] = []
    budget = [MAX_REQUESTS]
    await asyncio.gather(*[client(port, payloads, record_from + MAX_SECONDS, record_from, latencies, budget, w,
                                  health_only) for w in range(concurrency)])
    return {"latencies": np.asarray(latencies), "seconds": time.perf_counter() - record_from}


def wait_ready(port: int, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


class Server:
    """One uvicorn subprocess with its own database and data folder."""

    def __init__(self, name: str, root: Path, max_batch: int, shadow: bool, port: int) -> None:
        self.name, self.port = name, port
        self.data_dir = root / name
        url = f"sqlite:///{root / (name + '.db')}"
        prepare(url, self.data_dir)
        if shadow:
            start_shadow(url, self.data_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | {
            "SHIFTWATCH_DATABASE_URL": url,
            "SHIFTWATCH_DATA_DIR": str(self.data_dir),
            "SHIFTWATCH_SCHEDULER_ENABLED": "false",
            "SHIFTWATCH_AUTH_REQUIRED": "false",  # loopback; the README figures were measured without token checks
            "SHIFTWATCH_GATEWAY_MAX_BATCH_SIZE": str(max_batch),
            "SHIFTWATCH_GATEWAY_MAX_WAIT_MS": "5",
        }
        self.process = subprocess.Popen([sys.executable, __file__, "serve", "--port", str(port)], env=env)

    def ready(self, payload: bytes) -> None:
        import httpx

        wait_ready(self.port, self.process)
        # The first request loads the model(s); not measured.
        httpx.post(f"http://127.0.0.1:{self.port}/v1/models/digits/predict", content=payload,
                   headers={"content-type": "image/png"}, timeout=30).raise_for_status()

    def stats(self) -> dict:
        import httpx

        return httpx.get(f"http://127.0.0.1:{self.port}/v1/gateway/stats", params={"model": "digits"}).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def pooled(rows: list[dict]) -> dict:
    latencies = np.concatenate([r["latencies"] for r in rows])
    seconds = sum(r["seconds"] for r in rows)
    return {
        "requests": int(latencies.size),
        "throughput_rps": float(latencies.size / seconds),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "round_p99_ms": [float(np.percentile(r["latencies"], 99)) for r in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", nargs="?", default="bench")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port)
        return
    load_at_start = list(os.getloadavg())
    payloads = png_payloads(256)
    base_port = 18000 + os.getpid() % 1000
    modes = (("unbatched", 1, False), ("batched", 32, False), ("shadow", 32, True))
    measured: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = [Server(name, Path(tmp), batch, shadow, base_port + i) for i, (name, batch, shadow) in enumerate(modes)]
        try:
            for server in servers:
                server.ready(payloads[0])
            # Rounds interleave the modes (A B C A B C ...): background load on a shared machine
            # drifts over a minute and would otherwise favour whichever mode ran in a quiet spell.
            for round_no in range(args.rounds):
                for concurrency in CONCURRENCY:
                    for server in servers:
                        row = asyncio.run(level(server.port, payloads, concurrency))
                        measured.setdefault((server.name, concurrency), []).append(row)
                # The same server answering GET /health: what HTTP alone costs, with no model at all.
                measured.setdefault(("http_floor", 32), []).append(asyncio.run(level(servers[1].port, payloads, 32, True)))
                print(f"round {round_no + 1}/{args.rounds} done", flush=True)
            stats = {server.name: server.stats() for server in servers}
        finally:
            for server in servers:
                server.stop()
    table = {name: {c: pooled(measured[(name, c)]) for c in CONCURRENCY} for name, _, _ in modes}
    print(f"\n{'mode':10s} {'conc':>4s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, _, _ in modes:
        for c in CONCURRENCY:
            row = table[name][c]
            print(f"{name:10s} {c:4d} {row['throughput_rps']:8.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}")
    summary = {
        f"c{c}": {
            "throughput_ratio_batched_vs_unbatched": table["batched"][c]["throughput_rps"] / table["unbatched"][c]["throughput_rps"],
            "batched_p99_ms": table["batched"][c]["p99_ms"],
            "shadow_added_p99_ms": table["shadow"][c]["p99_ms"] - table["batched"][c]["p99_ms"],
            "shadow_added_p50_ms": table["shadow"][c]["p50_ms"] - table["batched"][c]["p50_ms"],
        }
        for c in CONCURRENCY
    }
    print("\nbatched / unbatched throughput: " + ", ".join(
        f"c={c}: {summary[f'c{c}']['throughput_ratio_batched_vs_unbatched']:.2f}x" for c in CONCURRENCY))
    floor = pooled(measured[("http_floor", 32)])
    print(f"HTTP floor (GET /health, c=32, same server): {floor['throughput_rps']:.0f} req/s")
    print("shadow added p99: " + ", ".join(f"c={c}: {summary[f'c{c}']['shadow_added_p99_ms']:+.2f} ms" for c in CONCURRENCY))
    result = {
        "model": "retrain DigitsCNN reference architecture, static int8 QDQ (retrain.quantize.quantize_int8), "
                 "untrained weights (same compute)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": load_at_start, "load_average_at_end": list(os.getloadavg()),
                    "note": "shared host (other jobs running), load generator on the same host"},
        "settings": {"max_batch_size": 32, "max_wait_ms": 5, "ort_threads": 1, "database": "sqlite"},
        "bounds": {"rounds": args.rounds, "max_requests_per_level": MAX_REQUESTS, "max_seconds_per_level": MAX_SECONDS},
        "ort_only_ms_per_image": ort_per_image(),
        "http_floor_health_c32": pooled(measured[("http_floor", 32)]),
        "results": {name: {f"c{c}": table[name][c] for c in CONCURRENCY} for name, _, _ in modes},
        "batch_sizes": {name: stats[name]["batch_sizes"] for name, _, _ in modes},
        "shadow_dropped": stats["shadow"]["shadow_dropped"],
        "summary": summary,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))


def ort_per_image() -> dict[str, float]:
    """ONNX Runtime alone on the same int8 model, one thread: the ceiling on what batching saves per image."""
    from shiftwatch.retrain.runtime import OnnxClassifier

    with tempfile.TemporaryDirectory() as tmp:
        build_models(Path(tmp))
        classifier = OnnxClassifier(Path(tmp) / "models" / "v1.onnx", "cpu", threads=1)
        out = {}
        for batch in (1, 32):
            images = np.random.default_rng(0).random((batch, 1, 32, 32), dtype=np.float32)
            for _ in range(20):
                classifier.run(images)
            started, calls = time.perf_counter(), 300
            for _ in range(calls):
                classifier.run(images)
            out[f"batch_{batch}"] = (time.perf_counter() - started) / calls / batch * 1000.0
        return out


if __name__ == "__main__":
    main()
