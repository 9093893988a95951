"""Stalled uploads hold neither an ingest slot nor the server: they time out with 408 (issue 16.11).

Raw sockets on a real uvicorn send headers and 16 bytes of a body, then stall; meanwhile
normal clients must be stored at once, and every stalled socket must get 408 within the
read timeout. A stalled upload's bytes do count against the shared parse budget.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
from sqlalchemy import func, select

from shiftwatch.collector.bodies import ByteBudget
from shiftwatch.collector.tables import Prediction
from tests.support.collector import as_json, records

READ_TIMEOUT_S = 1.5


def stored(db) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)))


def stall(port: int, declared: int, sent: bytes) -> socket.socket:
    """Open a connection, send the headers of a ``declared``-byte ingest and only ``sent`` of its body."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S + 10)
    head = (
        "POST /v1/predictions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def status_of(sock: socket.socket) -> int:
    reply = b""
    while b"\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    sock.close()
    return int(reply.split(b" ", 2)[1]) if reply else 0


def test_eight_stalled_uploads_do_not_block_ingest_and_get_408(app, db, digits_model, live_server):
    app.state.settings.body_read_timeout_s = READ_TIMEOUT_S
    assert app.state.settings.max_inflight_batches == 8
    stalled = [stall(live_server.port, 1000, b'{"predictions": ') for _ in range(8)]
    started = time.monotonic()
    try:
        time.sleep(0.2)  # the stalled requests are inside the app now
        for seed in range(3):
            response = httpx.post(f"{live_server.url}/v1/predictions", json=as_json(records(10, seed=seed)), timeout=5)
            assert response.status_code == 200, response.text
        assert time.monotonic() - started < READ_TIMEOUT_S  # answered while all eight were still stalled
        statuses = [status_of(sock) for sock in stalled]
    finally:
        for sock in stalled:
            sock.close()
    assert statuses == [408] * 8
    assert time.monotonic() - started < READ_TIMEOUT_S + 5
    assert stored(db) == 30


def test_bytes_held_by_uploads_count_against_the_parse_budget(app, db, digits_model, live_server):
    app.state.settings.body_read_timeout_s = READ_TIMEOUT_S
    app.state.parse_budget = ByteBudget(400_000)  # a 37 kB JSON body of 20 rows is charged ~350 kB in all
    body = json.dumps(as_json(records(20))).encode()
    holder = stall(live_server.port, 500_000, b" " * 390_000)  # holds 390 kB of the 400 kB while it stalls
    try:
        time.sleep(0.3)
        busy = httpx.post(f"{live_server.url}/v1/predictions", content=body,
                          headers={"content-type": "application/json"}, timeout=5)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1", busy.text
        assert status_of(holder) == 408
    finally:
        holder.close()
    assert app.state.parse_budget.held == 0
    again = httpx.post(f"{live_server.url}/v1/predictions", content=body,
                       headers={"content-type": "application/json"}, timeout=5)
    assert again.status_code == 200, again.text
    assert stored(db) == 20
