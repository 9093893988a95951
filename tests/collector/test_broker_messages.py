"""The broker's messages: a batch over NATS's payload limit is split by rows, each piece with a stable id."""

from __future__ import annotations

import pytest

from shiftwatch_client import wire
from shiftwatch_client.records import to_columns
from tests.support.collector import records


def test_a_batch_over_the_servers_payload_limit_is_split_by_rows_each_piece_with_its_own_id() -> None:
    from shiftwatch.collector.broker import HEADER_ROOM_BYTES, messages
    from shiftwatch.errors import TooLarge

    batch = to_columns(records(100, seed=11))
    whole = len(wire.encode(batch))
    pieces = messages(batch, whole // 3 + HEADER_ROOM_BYTES)
    decoded = [wire.decode(payload, max_unpacked_bytes=1 << 26) for payload, _ in pieces]
    assert len(pieces) >= 3 and all(len(p) <= whole // 3 for p, _ in pieces)
    assert [u for d in decoded for u in d.uuids()] == batch.uuids(), "every row once, in order"
    assert len({msg_id for _, msg_id in pieces}) == len(pieces)
    assert messages(batch, whole // 3 + HEADER_ROOM_BYTES) == pieces, "the same rows give the same ids (dedup)"
    with pytest.raises(TooLarge, match="one prediction encodes to"):
        messages(batch, HEADER_ROOM_BYTES + 10)
