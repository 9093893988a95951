"""The rows of a batch the server refused one by one, cut out of the batch with their reasons.

The SDK keeps just these rows in a ``rejected-*`` file (the rest were stored), and
``replay-rejected`` rewrites a file down to the rows still refused. Reasons are renumbered to
the rows' places in the kept file, so ``predictions[0]`` names its first row. Numpy and stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from shiftwatch_client import wire

_ROW = re.compile(r"^predictions\[\d+\]")


def refused_indices(refusals: Sequence[dict]) -> np.ndarray:
    """The refused rows' positions in the batch that was sent, in order."""
    return np.asarray(sorted(int(r["index"]) for r in refusals), dtype=np.int64)


def reason_lines(refusals: Sequence[dict]) -> str:
    """One line per refused row, ``predictions[j].field: reason``, j its place among the refused rows."""
    ordered = sorted(refusals, key=lambda r: int(r["index"]))
    return "\n".join(
        f"{_ROW.sub(f'predictions[{j}]', str(r.get('field', '')))}: HTTP {r.get('status', 422)}: "
        f"{r.get('reason', '')} (row {int(r['index'])} of the batch as sent)"
        for j, r in enumerate(ordered)
    )


def npz_rows(body: bytes, indices: np.ndarray) -> bytes:
    """The ``.npz`` batch of just the rows at ``indices`` (a batch this client encoded, or the server took in)."""
    batch = wire.decode(body, max_unpacked_bytes=max(len(body) * 64, 1 << 20))
    return wire.encode(batch.take(indices))


def jsonl_rows(text: str, indices: np.ndarray) -> str:
    """The JSON-lines batch of just the rows at ``indices`` (blank lines are not rows)."""
    rows = [line for line in text.splitlines() if line.strip()]
    return "\n".join(rows[i] for i in indices.tolist()) + "\n"
