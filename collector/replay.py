"""Resend the SDK's refused batches once their cause is fixed (the model registered, a bad row edited).

A batch the server now takes is deleted with its reason; one it refuses again stays, with the new
reason in its ``.txt``; an unreachable server ends the pass with nothing changed. Re-sending is
safe: rows are keyed on their id, so a batch that was partly stored counts the rest as duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shiftwatch.collector import wire
from shiftwatch.collector.spill import RejectedBatch, SpillDir
from shiftwatch.collector.transport import ApiError, Transport


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What happened to one rejected batch: ``stored``, ``refused`` again, or ``unsent`` (server away)."""

    file: str
    outcome: str
    stored: int = 0
    duplicates: int = 0
    reason: str = ""


def _request(batch: RejectedBatch) -> tuple[bytes, str]:
    """The batch as the server reads it: ``.npz`` as sent, JSON lines as one JSON batch."""
    data = batch.path.read_bytes()
    if batch.path.suffix == ".npz":
        return data, wire.CONTENT_TYPE
    rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    return json.dumps({"predictions": rows}).encode(), "application/json"


def replay_rejected(transport: Transport, spill: SpillDir, *, dry_run: bool = False) -> list[ReplayOutcome]:
    """Send every rejected batch in ``spill`` once, oldest first; ``dry_run`` only lists them."""
    outcomes = []
    for batch in spill.rejected():
        if dry_run:
            outcomes.append(ReplayOutcome(batch.path.name, "kept", reason=batch.reason))
            continue
        try:
            body, content_type = _request(batch)
            answer = transport.call("POST", "/v1/predictions", body, content_type)
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
        spill.forget(batch)
        counts = answer if isinstance(answer, dict) else {}
        outcomes.append(ReplayOutcome(batch.path.name, "stored", counts.get("stored", 0), counts.get("duplicates", 0)))
    return outcomes
