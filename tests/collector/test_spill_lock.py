"""Clients and processes sharing one spill directory replay each pending file once (issue 27, item 6):
a replay pass takes the directory's lock, and one that finds it held leaves the files to its holder."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from shiftwatch.collector.tables import Prediction
from shiftwatch_client.client import Client
from shiftwatch_client.spill import SpillDir
from tests.collector.test_client_losses import wait_for
from tests.collector.test_replay import replay
from tests.support.collector import as_npz, records
from tests.support.servers import LiveServer, free_port


def stored(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


def test_a_client_leaves_the_pending_files_to_whoever_holds_the_replay_lock(app, db, digits_model, tmp_path) -> None:
    port, spill = free_port(), tmp_path / "spill"
    client = Client(f"http://127.0.0.1:{port}", spill_dir=spill, max_retry_s=0.2, replay_interval_s=0.1)
    for i in range(30):
        client.log("digits", "v1", i % 10, 0.9, embedding=np.zeros(64))
    assert not client.flush(timeout=30) and client.pending_spill_files()
    server = LiveServer(app, port=port).start()
    try:
        with SpillDir(spill).replay_lock() as mine:  # another process replaying this directory
            assert mine
            assert not wait_for(lambda: not client.pending_spill_files(), timeout=2.0)
            assert stored(db) == 0 and client.stats.replayed_batches == 0
        assert wait_for(lambda: not client.pending_spill_files())
        client.close(timeout=30)
        assert stored(db) == 30 and client.stats.duplicates == 0
    finally:
        server.stop()


def test_two_clients_on_one_directory_send_each_file_once(app, db, digits_model, tmp_path) -> None:
    spill = SpillDir(tmp_path / "spill")
    for seed in range(12):
        spill.spill(as_npz(records(50, seed=seed)), 50)
    server = LiveServer(app).start()
    try:
        clients = [Client(server.url, spill_dir=spill.root, replay_interval_s=0.05) for _ in range(2)]
        assert wait_for(lambda: not spill.pending())
        for client in clients:
            client.close(timeout=30)
    finally:
        server.stop()
    assert stored(db) == 600
    assert sum(c.stats.replayed_batches for c in clients) == 12
    assert sum(c.stats.duplicates for c in clients) == 0


def test_replay_rejected_refuses_to_run_twice_at_once(live_server, tmp_path) -> None:
    spill = SpillDir(tmp_path / "spill")
    path = spill.reject(b"x", None, "HTTP 422: something")
    with spill.replay_lock("replay-rejected"):
        result = replay(live_server.url, spill.root)
    assert result.returncode != 0 and "another replay-rejected" in result.stderr
    assert path.exists()
