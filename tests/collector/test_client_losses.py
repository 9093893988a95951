"""Nothing the SDK is given is lost (issue 16): every row ends stored, refused to the caller, or kept as
rejected with its reason, and ``flush()`` and ``stats`` say which. Against a real uvicorn on loopback."""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from sqlalchemy import func, select

from shiftwatch.collector.tables import Prediction
from shiftwatch_client.client import Client
from tests.support.servers import LiveServer, free_port


def stored(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


def log_good(client: Client, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        probs = rng.dirichlet(np.ones(10))
        client.log("digits", "v1", int(probs.argmax()), float(probs.max()), embedding=rng.normal(size=64),
                   probabilities=probs, request_id=f"r{seed}-{i}", stream_id="cam-1")  # fmt: skip


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# Each bad argument, and the name the error must carry.
BAD_ARGUMENTS = [
    ({"ts": datetime.now()}, "ts"),
    ({"request_id": "a\x00b"}, "request_id"),
    ({"stream_id": "cam\x00"}, "stream_id"),
    ({"request_id": "r" * 201}, "request_id"),
    ({"input_ref": "x" * 2001}, "input_ref"),
    ({"confidence": float("nan")}, "confidence"),
    ({"confidence": 1.5}, "confidence"),
    ({"embedding": [0.0] * 63 + [float("nan")]}, "embedding"),
    ({"probabilities": [float("inf")] + [0.0] * 9}, "probabilities"),
    ({"latency_ms": float("inf")}, "latency_ms"),
    ({"predicted_class": 3.7}, "predicted_class"),
    ({"route": "blue"}, "route"),
    ({"embedding": ["a"] * 64}, "embedding"),
]


@pytest.mark.parametrize(("bad", "name"), BAD_ARGUMENTS, ids=[f"{n}-{i}" for i, (_, n) in enumerate(BAD_ARGUMENTS)])
def test_log_refuses_a_bad_argument_at_once_naming_it(live_server, db, digits_model, tmp_path, bad, name) -> None:
    args = {"predicted_class": 1, "confidence": 0.9, "embedding": np.zeros(64), **bad}
    with Client(live_server.url, spill_dir=tmp_path / "spill") as client:
        with pytest.raises((TypeError, ValueError), match=name):
            client.log("digits", "v1", args.pop("predicted_class"), args.pop("confidence"), **args)
        assert client.stats.logged == 0


def test_naive_timestamps_no_longer_kill_the_senders(live_server, db, digits_model, tmp_path) -> None:
    # Item 1: four naive timestamps used to kill all four sender threads; the next rows vanished.
    with Client(live_server.url, batch_size=200, spill_dir=tmp_path / "spill") as client:
        for _ in range(8):
            with pytest.raises(ValueError, match="ts must be timezone-aware"):
                client.log("digits", "v1", 1, 0.9, embedding=np.zeros(64), ts=datetime.now())
        log_good(client, 3000)
        assert client.flush(timeout=60)
        assert (client.stats.logged, client.stats.stored, client.stats.rejected) == (3000, 3000, 0)
    assert stored(db) == 3000


class BrokenZone(tzinfo):
    """A time zone whose offset lookup works once, then fails (as a zone database that went away would)."""

    def __init__(self) -> None:
        self.calls = 0

    def utcoffset(self, dt: datetime | None) -> timedelta:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("zone database unavailable")
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


def test_an_exception_inside_a_sender_keeps_the_batch_as_rejected_and_the_sender_lives(
    live_server, db, digits_model, tmp_path
) -> None:
    spill = tmp_path / "spill"
    with Client(live_server.url, spill_dir=spill, concurrency=1) as client:
        ts = datetime.now(UTC).replace(tzinfo=BrokenZone())
        client.log("digits", "v1", 1, 0.9, embedding=np.zeros(64), ts=ts)  # passes log(), fails when encoded
        assert not client.flush(timeout=30)
        assert client.stats.rejected == 1
        (reason,) = spill.glob("rejected-*.txt")
        assert "zone database unavailable" in reason.read_text()
        assert len(list(spill.glob("rejected-*.jsonl"))) == 1, "the rows are kept even though they cannot be encoded"
        log_good(client, 500)  # the only sender must still be alive
        assert client.flush(timeout=60)
    assert stored(db) == 500


class FailingProxy:
    """A loopback HTTP proxy in front of a server that answers 500 to any body holding ``poison`` bytes."""

    def __init__(self, upstream_port: int, port: int) -> None:
        self.poison: list[bytes] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if any(marker in body for marker in proxy.poison):
                    self._answer(500, b'{"detail": "internal error"}', "application/json")
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream.request("POST", self.path, body=body, headers=headers)
                response = upstream.getresponse()
                self._answer(response.status, response.read(), response.getheader("Content-Type", "text/plain"))
                upstream.close()

            def _answer(self, status: int, payload: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FailingProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_batch_the_server_keeps_failing_on_is_rejected_and_does_not_block_the_spill_queue(
    live_server, db, digits_model, tmp_path
) -> None:
    # Item 2/3: a spilled batch that answers 500 was retried for ever, and every batch behind it waited.
    port = free_port()
    spill = tmp_path / "spill"
    client = Client(f"http://127.0.0.1:{port}", spill_dir=spill, compress=False, max_retry_s=0.3,
                    replay_interval_s=0.2, max_server_errors=3)  # fmt: skip
    poisoned = uuid.uuid4()
    client.log("digits", "v1", 1, 0.9, embedding=np.zeros(64), id=poisoned)
    assert not client.flush(timeout=30)
    log_good(client, 100)  # spilled after the poisoned batch, so it waits behind it in replay order
    assert not client.flush(timeout=30)
    # The poisoned batch's file, then the good ones: one, or more when a loaded machine sent them in parts.
    assert len(client.pending_spill_files()) >= 2 and client.stats.spilled == 101

    proxy = FailingProxy(live_server.port, port)
    proxy.poison.append(poisoned.bytes)
    proxy.start()
    try:
        assert wait_for(lambda: not client.pending_spill_files()), "the queue stayed blocked"
        assert stored(db) == 100
        assert (client.stats.spilled, client.stats.rejected) == (0, 1)
        (reason,) = spill.glob("rejected-*.txt")
        assert "gave up after 3 server errors" in reason.read_text()

        # In memory too: 500s are bounded by max_server_errors, not waited out for max_retry_s.
        client.max_retry_s = 600
        again = uuid.uuid4()
        proxy.poison.append(again.bytes)
        client.log("digits", "v1", 1, 0.9, embedding=np.zeros(64), id=again)
        started = time.monotonic()
        assert not client.flush(timeout=60)
        assert time.monotonic() - started < 30 and client.stats.rejected == 2
    finally:
        client.close(timeout=30)
        proxy.stop()


def test_the_same_id_resent_with_another_ts_is_reported_rejected_not_stored_twice(
    live_server, db, digits_model, tmp_path
) -> None:
    # Item 4: the id is the key; a retry must keep its ts, and another ts is refused (409), not stored again.
    pid, ts = uuid.uuid4(), datetime.now(UTC)
    with Client(live_server.url, spill_dir=tmp_path / "spill") as client:
        client.log("digits", "v1", 1, 0.9, embedding=np.zeros(64), id=pid, ts=ts)
        assert client.flush()
        client.log("digits", "v1", 1, 0.9, embedding=np.zeros(64), id=pid, ts=ts + timedelta(seconds=1))
        assert not client.flush()
        client.log("digits", "v1", 1, 0.9, embedding=np.zeros(64), id=pid, ts=ts)
        assert client.flush()
        assert (client.stats.stored, client.stats.duplicates, client.stats.rejected) == (1, 1, 1)
        (reason,) = (tmp_path / "spill").glob("rejected-*.txt")
        assert "HTTP 409" in reason.read_text() and "keep the ts" in reason.read_text()
    assert stored(db) == 1


def test_close_replays_spilled_batches_once_when_the_server_is_back(app, db, digits_model, tmp_path) -> None:
    # Item 5: with no replay tick due, close() itself must try the spill files before it exits.
    port = free_port()
    spill = tmp_path / "spill"
    client = Client(f"http://127.0.0.1:{port}", spill_dir=spill, max_retry_s=0.2, replay_interval_s=3600)
    log_good(client, 50)
    assert not client.flush(timeout=30)
    assert client.pending_spill_files()
    server = LiveServer(app, port=port).start()
    try:
        client.close(timeout=30)
        assert list(spill.glob("pending-*.npz")) == []
        assert stored(db) == 50 and client.stats.replayed_batches >= 1
    finally:
        server.stop()


def test_flush_and_stats_tell_the_truth_about_a_rejected_batch(live_server, db, digits_model, tmp_path) -> None:
    # Issue 17: flush() said True for a refused batch, and stats.logged stayed 0.
    with Client(live_server.url, batch_size=1000, spill_dir=tmp_path / "spill") as client:
        log_good(client, 800)
        client.log("digits", "v1", 1, 0.9, embedding=np.zeros(63))  # the server knows v1 wants 64 values
        assert not client.flush(timeout=60)
        stats = client.stats
        assert (stats.logged, stats.sent, stats.stored, stats.rejected, stats.spilled) == (801, 800, 800, 1, 0)
        assert client.flush(timeout=10), "nothing new failed since the last flush"
    assert stored(db) == 800


def test_a_mixed_run_accounts_for_every_row(app, db, digits_model, tmp_path) -> None:
    """Good rows, rows log() refuses, rows the server refuses, an outage, a duplicate and a moved id:
    rows given = stored + duplicates + reported rejected (to the caller or in files), nothing lost."""
    from shiftwatch_client import wire

    port, spill = free_port(), tmp_path / "spill"
    server = LiveServer(app, port=port).start()
    client = Client(server.url, batch_size=64, spill_dir=spill, max_retry_s=0.3, replay_interval_s=0.2)
    rng = np.random.default_rng(7)
    given = refused_by_log = 0
    good_ids, server_refused_ids = set(), set()

    def log_mixed(n: int) -> None:
        nonlocal given, refused_by_log
        for i in range(n):
            given += 1
            kind = i % 10
            args = {"embedding": rng.normal(size=64), "request_id": f"m{given}"}
            if kind == 0:
                args["ts"] = datetime.now()
            elif kind == 1:
                args["request_id"] = "a\x00b"
            elif kind == 2:
                args["stream_id"] = "s" * 300
            elif kind == 3:
                args["embedding"] = np.full(64, np.nan)
            elif kind == 4:
                args["embedding"] = rng.normal(size=63)  # only the server knows v1 takes 64 values
            try:
                pid = client.log("digits", "v1", 2, 0.8, **args)
            except (TypeError, ValueError):
                refused_by_log += 1
                continue
            (server_refused_ids if kind == 4 else good_ids).add(pid)

    try:
        log_mixed(600)
        assert not client.flush(timeout=60), "the 63-value rows were refused"
        server.stop()  # the outage: what is logged now is spilled
        log_mixed(300)
        assert not client.flush(timeout=60)
        assert client.stats.spilled > 0
        server = LiveServer(app, port=port).start()
        assert wait_for(lambda: not client.pending_spill_files())
        some_id = next(iter(good_ids))
        with db.session() as session:
            first_ts = session.scalar(select(Prediction.ts).where(Prediction.id == some_id))
        given += 2
        client.log("digits", "v1", 2, 0.8, embedding=np.zeros(64), id=some_id, ts=first_ts)  # a retry: duplicate
        assert client.flush(timeout=30)
        client.log("digits", "v1", 2, 0.8, embedding=np.zeros(64), id=some_id, ts=first_ts + timedelta(seconds=1))
        assert not client.flush(timeout=30), "another ts for a stored id is refused (409)"
        client.close(timeout=30)
    finally:
        server.stop()

    stats = client.stats
    in_files = sum(len(wire.decode(p.read_bytes(), max_unpacked_bytes=10**8)) for p in spill.glob("rejected-*.npz"))
    with db.session() as session:
        stored_ids = set(session.scalars(select(Prediction.id)))
    print(f"\nmixed run: given {given}, refused by log() {refused_by_log}, logged {stats.logged}, "
          f"sent {stats.sent}, stored {stats.stored}, duplicates {stats.duplicates}, rejected {stats.rejected}, "
          f"spilled {stats.spilled}, rows in the database {len(stored_ids)}")  # fmt: skip
    assert given == refused_by_log + stats.logged
    assert stats.logged == stats.stored + stats.duplicates + stats.rejected and stats.spilled == 0
    assert stats.sent == stats.stored + stats.duplicates
    assert stats.stored == len(stored_ids) == stored(db)
    assert stats.rejected == in_files == len(server_refused_ids) + 1
    assert good_ids <= stored_ids and not server_refused_ids & stored_ids
    assert refused_by_log == 4 * 90 and stats.spilled_batches >= 1 and stats.duplicates == 1
