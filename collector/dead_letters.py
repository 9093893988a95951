"""Rows the store refused on the broker path, kept on the dead-letter stream with their reason.

A worker publishes one letter per refused row (or one for a message it cannot read) before it acks
the message; each letter's ``Nats-Msg-Id`` is its message's id and the row's place, so a redelivered
message never adds the same letter twice. ``shiftwatch ingest dead-letters`` reads them back.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from shiftwatch.collector.broker import BrokerConfig, connect
from shiftwatch.collector.row_checks import RowProblem
from shiftwatch_client.wire import ColumnBatch


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused row: its id, ts, model and version (empty when the message was unreadable), field and reason."""

    id: str
    ts: str
    model: str
    version: str
    field: str
    reason: str
    status: int
    message_id: str
    at: str

    def payload(self) -> bytes:
        return json.dumps(asdict(self)).encode()


def letters(batch: ColumnBatch, problems: list[RowProblem], msg_id: str) -> list[DeadLetter]:
    """A letter per refused row of a message's batch."""
    at = datetime.now(UTC).isoformat()
    out = []
    for p in problems:
        ts = datetime.fromtimestamp(int(batch.ts_us[p.index]) / 1e6, tz=UTC).isoformat()
        out.append(DeadLetter(
            id=str(uuid.UUID(bytes=bytes(batch.ids[p.index]))), ts=ts, model=str(batch.model[p.index]),
            version=str(batch.version[p.index]), field=p.name, reason=p.reason, status=p.kind.status_code,
            message_id=msg_id, at=at,
        ))  # fmt: skip
    return out


def unreadable(msg_id: str, reason: str) -> DeadLetter:
    """The letter for a message no row of which could be read (its whole payload is lost to the store)."""
    return DeadLetter(id="", ts="", model="", version="", field="message", reason=reason, status=422,
                      message_id=msg_id, at=datetime.now(UTC).isoformat())  # fmt: skip


async def publish_letters(js: Any, config: BrokerConfig, found: list[DeadLetter]) -> None:
    """Publish each letter and wait for JetStream's acks (deduplicated by message id and row)."""
    for n, letter in enumerate(found):
        await js.publish(config.dead_subject, letter.payload(), timeout=config.timeout_s, stream=config.dead_stream,
                         headers={"Nats-Msg-Id": f"{letter.message_id}:{letter.id or n}:{letter.field}"})  # fmt: skip


async def read_letters(config: BrokerConfig, limit: int) -> tuple[int, list[DeadLetter]]:
    """How many letters the stream holds, and the newest ``limit`` of them (oldest first)."""
    from nats.js.errors import NotFoundError

    nc = await connect(config)
    try:
        js = nc.jetstream(timeout=config.timeout_s)
        try:
            state = (await js.stream_info(config.dead_stream)).state
        except NotFoundError:
            return 0, []
        if state.messages == 0:
            return 0, []
        found: list[DeadLetter] = []
        for seq in range(max(state.first_seq, state.last_seq - limit + 1), state.last_seq + 1):
            try:
                raw = await js.get_msg(config.dead_stream, seq)
            except NotFoundError:  # deleted by its limits
                continue
            found.append(DeadLetter(**json.loads(raw.data)))
        return state.messages, found
    finally:
        await nc.close()
