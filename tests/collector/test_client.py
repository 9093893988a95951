"""The SDK against a real uvicorn: everything logged is stored once, even across server outages."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC

import numpy as np
from sqlalchemy import func, select

from shiftwatch.collector.tables import Prediction
from shiftwatch_client.client import Client
from tests.support.servers import LiveServer, free_port


def stored(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


def log_many(client: Client, n: int, seed: int = 0, version: str = "v1") -> list:
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        probs = rng.dirichlet(np.ones(10))
        ids.append(
            client.log(
                "digits", version, int(probs.argmax()), float(probs.max()),
                embedding=rng.normal(size=64), probabilities=probs, request_id=f"r{i}", stream_id="cam-1",
            )
        )  # fmt: skip
    return ids


def test_logged_predictions_are_all_stored(live_server, db, digits_model, tmp_path) -> None:
    with Client(live_server.url, batch_size=100, spill_dir=tmp_path / "spill") as client:
        log_many(client, 1000)
        assert client.flush(timeout=60)
        assert client.stats.stored == 1000
    assert stored(db) == 1000


def test_log_returns_before_the_server_answers(db, digits_model, tmp_path) -> None:
    # Nobody listens on this port: log() must not wait for the network.
    client = Client(f"http://127.0.0.1:{free_port()}", spill_dir=tmp_path / "spill", max_retry_s=0.5)
    started = time.perf_counter()
    log_many(client, 200)
    assert time.perf_counter() - started < 1.0
    client.close(timeout=10)


def test_outage_spills_to_disk_then_replays_once_the_server_is_back(app, db, digits_model, tmp_path) -> None:
    port = free_port()
    spill = tmp_path / "spill"
    client = Client(f"http://127.0.0.1:{port}", spill_dir=spill, max_retry_s=0.3, replay_interval_s=0.2)
    log_many(client, 300, seed=1)
    assert not client.flush(timeout=30), "spilled rows are not on the server: flush must say so"
    assert client.stats.spilled == 300
    assert client.pending_spill_files(), "the batch should be on disk while the server is down"
    assert stored(db) == 0

    server = LiveServer(app, port=port).start()
    try:
        deadline = time.monotonic() + 30
        while client.pending_spill_files() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.pending_spill_files() == []
        assert stored(db) == 300
        assert (client.stats.spilled, client.stats.stored) == (0, 300)
    finally:
        client.close()
        server.stop()


def test_spilled_batches_survive_a_client_restart(app, db, digits_model, tmp_path) -> None:
    port = free_port()
    spill = tmp_path / "spill"
    first = Client(f"http://127.0.0.1:{port}", spill_dir=spill, max_retry_s=0.2)
    log_many(first, 120, seed=2)
    first.close(timeout=20)
    assert len(list(spill.glob("pending-*.npz"))) >= 1

    server = LiveServer(app, port=port).start()
    try:
        second = Client(server.url, spill_dir=spill, replay_interval_s=0.1)
        deadline = time.monotonic() + 30
        while second.pending_spill_files() and time.monotonic() < deadline:
            time.sleep(0.1)
        second.close()
        assert stored(db) == 120
    finally:
        server.stop()


def test_resending_after_a_lost_response_stores_once(live_server, db, digits_model, tmp_path) -> None:
    # Same ids logged twice (as a retry after a lost response would send them): stored once.
    from uuid import uuid4

    ids = [uuid4() for _ in range(50)]
    from datetime import datetime

    ts = datetime.now(UTC)
    with Client(live_server.url, spill_dir=tmp_path / "spill") as client:
        for _ in range(2):
            for pid in ids:
                client.log("digits", "v1", 1, 0.9, embedding=np.zeros(64), id=pid, ts=ts)
            client.flush()
        assert client.stats.duplicates == 50
    assert stored(db) == 50


def test_invalid_batch_is_kept_in_a_rejected_file_with_the_reason(live_server, db, digits_model, tmp_path) -> None:
    with Client(live_server.url, spill_dir=tmp_path / "spill") as client:
        client.log("digits", "v1", 3, 0.5, embedding=np.zeros(63))
        client.flush()
        assert client.stats.rejected_batches == 1
        reason = (tmp_path / "spill").glob("rejected-*.txt").__next__().read_text()
    assert "expects 64" in reason
    assert stored(db) == 0


def test_sdk_import_is_light() -> None:
    code = (
        "import sys, shiftwatch_client.client; "
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'torch', 'pandas', 'evidently') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_process_that_exits_without_close_spills_what_was_not_sent(tmp_path) -> None:
    # The server is down and the program never calls close(): at exit the client flushes what
    # it can and writes the rest to the spill directory, to be replayed by the next Client.
    code = (
        "import sys, numpy as np; from shiftwatch_client.client import Client; "
        f"c = Client('http://127.0.0.1:{free_port()}', spill_dir=sys.argv[1], max_retry_s=300); "
        "[c.log('digits', 'v1', 1, 0.9, embedding=np.zeros(8)) for _ in range(300)]"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    from shiftwatch_client import wire

    rows = sum(len(wire.decode(p.read_bytes(), max_unpacked_bytes=10**8)) for p in tmp_path.glob("pending-*.npz"))
    assert rows == 300
