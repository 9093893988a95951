"""Resend the SDK's refused batches once their cause is fixed (the model registered, a bad row edited).

Each batch is sent asking the server to store its valid rows and refuse the rest row by row: a batch
the server takes whole is deleted with its reason; one with rows still refused is cut down to just
those rows, each with its new reason in the ``.txt``; a batch refused whole stays as it was, with the
new reason; an unreachable server ends the pass with nothing changed. Re-sending is safe: rows are
keyed on their id, so rows stored before count as duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shiftwatch_client import wire
from shiftwatch_client.refusals import jsonl_rows, npz_rows, reason_lines, refused_indices
from shiftwatch_client.spill import RejectedBatch, SpillDir
from shiftwatch_client.transport import INGEST_PATH, Ack, ApiError, Transport


class ReplayBusy(Exception):
    """Another ``replay-rejected`` holds the spill directory; try again when it ends."""


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What happened to one rejected batch: ``stored`` whole, ``partly`` stored (``refused`` rows kept),
    ``refused`` again whole, or ``unsent`` (server away)."""

    file: str
    outcome: str
    stored: int = 0
    duplicates: int = 0
    reason: str = ""
    refused: int = 0


def _request(batch: RejectedBatch) -> tuple[bytes, str]:
    """The batch as the server reads it: ``.npz`` as sent, JSON lines as one JSON batch."""
    data = batch.path.read_bytes()
    if batch.path.suffix == ".npz":
        return data, wire.CONTENT_TYPE
    rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    return json.dumps({"predictions": rows}).encode(), "application/json"


def replay_rejected(transport: Transport, spill: SpillDir, *, dry_run: bool = False) -> list[ReplayOutcome]:
    """Send every rejected batch in ``spill`` once, oldest first; ``dry_run`` only lists them.

    Raises ``ReplayBusy`` while another ``replay-rejected`` holds the directory."""
    with spill.replay_lock("replay-rejected") as mine:
        if not mine:
            raise ReplayBusy(f"another replay-rejected is sending the batches in {spill.root}; try again when it ends")
        return _replay_all(transport, spill, dry_run=dry_run)


def _replay_all(transport: Transport, spill: SpillDir, *, dry_run: bool) -> list[ReplayOutcome]:
    outcomes = []
    for batch in spill.rejected():
        if dry_run:
            outcomes.append(ReplayOutcome(batch.path.name, "kept", reason=batch.reason))
            continue
        try:
            body, content_type = _request(batch)
            answer = transport.call("POST", INGEST_PATH, body, content_type)
        except ApiError as exc:
            spill.refused_again(batch, str(exc))
            outcomes.append(ReplayOutcome(batch.path.name, "refused", reason=str(exc)))
            continue
        except ValueError as exc:  # an edited .jsonl that is no longer JSON
            spill.refused_again(batch, f"not JSON lines: {exc}")
            outcomes.append(ReplayOutcome(batch.path.name, "refused", reason=f"not JSON lines: {exc}"))
            continue
        except OSError as exc:
            outcomes.append(ReplayOutcome(batch.path.name, "unsent", reason=f"server unreachable: {exc}"))
            break
        ack = Ack.of(answer)
        if not ack.refusals:
            spill.forget(batch)
            outcomes.append(ReplayOutcome(batch.path.name, "stored", ack.stored, ack.duplicates))
            continue
        reason = reason_lines(ack.refusals)
        _keep_only_refused(spill, batch, ack)
        outcome = "partly" if ack.stored + ack.duplicates else "refused"
        outcomes.append(ReplayOutcome(batch.path.name, outcome, ack.stored, ack.duplicates, reason, len(ack.refusals)))
    return outcomes


def _keep_only_refused(spill: SpillDir, batch: RejectedBatch, ack: Ack) -> None:
    """Rewrite the batch's file to hold only the rows the server refused, and their reasons."""
    indices = refused_indices(ack.refusals)
    data = batch.path.read_bytes()
    kept = npz_rows(data, indices) if batch.path.suffix == ".npz" else jsonl_rows(data.decode(), indices).encode()
    spill.rewrite(batch, kept, f"the server refused {indices.size} rows:\n{reason_lines(ack.refusals)}")
