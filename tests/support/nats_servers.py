"""Real NATS JetStream servers for the broker tests: the shared one on 127.0.0.1:4222, or a private one.

A private ``nats-server -js`` runs on a free port with its own store folder, so a test may stop and
restart it. Every test names its own stream and subject (``unique_names``): tests and CI share 4222.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from shiftwatch.settings import Settings
from tests.support.servers import free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
SHARED_URL = "nats://127.0.0.1:4222"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def shared_url_or_skip() -> str:
    """The machine's NATS (CI runs one); missing, the test skips locally and fails under CI."""
    pytest.importorskip("nats")
    if not listening(4222):
        import os

        if os.environ.get("CI") == "true":
            pytest.fail("NATS with JetStream is required in CI on 127.0.0.1:4222")
        pytest.skip("no NATS server on 127.0.0.1:4222")
    return SHARED_URL


def broker_settings(settings: Settings, url: str, **overrides: object) -> Settings:
    """``settings`` with a broker on ``url`` and a stream, subject and consumer no other test uses."""
    tag = uuid.uuid4().hex[:12]
    fields = dict(ingest_broker_url=url, ingest_broker_stream=f"TEST_{tag}", ingest_broker_subject=f"test.{tag}",
                  ingest_broker_consumer=f"workers-{tag}", ingest_broker_ack_wait_s=2.0,
                  ingest_broker_publish_timeout_s=2.0)  # fmt: skip
    fields.update(overrides)
    return settings.model_copy(update=fields)


class PrivateNats:
    """A nats-server with JetStream on its own port and store folder; ``restart`` keeps both."""

    def __init__(self, store: Path, max_payload: int | None = None) -> None:
        if not Path(NATS_SERVER).exists():
            pytest.skip(f"{NATS_SERVER} is not installed")
        self.store = store
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.options: list[str] = []
        if max_payload is not None:  # no command-line flag for it: a one-line config file
            store.mkdir(parents=True, exist_ok=True)
            (store / "nats.conf").write_text(f"max_payload: {max_payload}\n")
            self.options = ["-c", str(store / "nats.conf")]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> PrivateNats:
        self.process = subprocess.Popen(
            [NATS_SERVER, *self.options, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None

    def restart(self, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


def consumers_pulling(url: str, stream: str, consumer: str) -> int:
    """Pull requests waiting on a consumer: how many workers have started and ask for work."""
    import asyncio

    import nats
    from nats.js.errors import NotFoundError

    async def waiting() -> int:
        nc = await nats.connect(url)
        try:
            return (await nc.jetstream().consumer_info(stream, consumer)).num_waiting or 0
        except NotFoundError:
            return 0
        finally:
            await nc.close()

    return asyncio.run(waiting())


def wait_pulling(url: str, stream: str, consumer: str, workers: int, timeout_s: float = 120) -> None:
    """Until ``workers`` workers pull from the consumer (their start-up is over)."""
    deadline = time.monotonic() + timeout_s
    while consumers_pulling(url, stream, consumer) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} workers did not start pulling from {stream}/{consumer}")
        time.sleep(0.2)
