"""Debian's Prometheus on a loopback port, scraping a live shiftwatch server; its binaries come from
tests/support/prometheus_fetch.sh (``make test-services`` runs it)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".prometheus" / "usr" / "bin"
FETCH = ROOT / "tests" / "support" / "prometheus_fetch.sh"


def binaries() -> tuple[Path, Path]:
    """(prometheus, promtool), fetched on first use; a failed fetch fails the test with the script's words."""
    if not (BIN / "prometheus").exists():
        done = subprocess.run(["bash", str(FETCH)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{FETCH.name} failed: {done.stderr or done.stdout}"
    return BIN / "prometheus", BIN / "promtool"


class Prometheus:
    """A private Prometheus scraping ``target`` (host:port) every second; query() asks its HTTP API."""

    def __init__(self, target: str, folder: Path) -> None:
        prometheus, _ = binaries()
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n  - job_name: shiftwatch\n    static_configs:\n      - targets: ['{target}']\n"
        )
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [str(prometheus), f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def query(self, promql: str) -> list[dict] | None:
        """The query's result; None while Prometheus is not ready (it answers 503 while it starts)."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        if answer.status_code == 503:
            return None
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, promql: str, timeout_s: float = 45.0) -> list[dict]:
        """The query's result once it is non-empty (scrapes are every second; the first may take a few)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                result = self.query(promql)
                if result:
                    return result
            except httpx.HTTPError:
                pass  # not listening yet
            assert self.process.poll() is None, f"prometheus exited: {self.process.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, f"no result for {promql!r} within {timeout_s:.0f} s"
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
