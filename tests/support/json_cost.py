"""JSON ingest bodies of the shapes that cost the most to parse, and the peak memory parsing one takes.

``measure`` runs in a fresh interpreter (``python -m tests.support.json_cost KIND``) so the peak
(VmHWM, reset first through /proc/self/clear_refs) is the parse's alone. bench/json_parse_cost.py
and tests/collector/test_json_cost.py use it; collector/json_rows.py charges what it finds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

MIB = 2**20
KINDS = ("one_vector", "capped_vectors", "realistic", "small_rows")


def _head() -> dict:
    return {"id": str(uuid.uuid4()), "model": "digits", "version": "v1", "ts": datetime.now(UTC).isoformat(),
            "predicted_class": 1, "confidence": 0.5}  # fmt: skip


def _rows_until(size: int, make_row) -> bytes:
    rows, total = [], 0
    while total < size:
        rows.append(make_row())
        total += len(rows[-1]) + 1
    return ('{"predictions": [' + ",".join(rows) + "]}").encode()


def _with_zeros(n: int) -> str:
    return json.dumps(_head())[:-1] + ', "embedding": [' + ",".join(["0"] * n) + "]}"


def body(kind: str, size: int = 16 * MIB) -> bytes:
    """``one_vector``: one row whose embedding is ``size/2`` zeros (the issue's 8.4 M values);
    ``capped_vectors``: rows of 65,536 zeros each (the per-row cap); ``realistic``: 128-d float
    embeddings; ``small_rows``: rows with no vectors at all."""
    if kind == "one_vector":
        return ('{"predictions": [' + _with_zeros(size // 2) + "]}").encode()
    if kind == "capped_vectors":
        return _rows_until(size, lambda: _with_zeros(65536))
    if kind == "realistic":
        return _rows_until(size, lambda: json.dumps(_head() | {"embedding": [0.123456789012345] * 128}))
    if kind == "small_rows":
        return _rows_until(size, lambda: json.dumps(_head()))
    raise ValueError(f"kind must be one of {', '.join(KINDS)}")


def _status(field: str) -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field}")


def _measure_here(kind: str, partial: bool, size: int) -> dict:
    from shiftwatch.collector.json_rows import parse_cost, parse_rows
    from shiftwatch.errors import ShiftwatchError

    data = body(kind, size)
    if partial:  # one row the schema refuses: the row-by-row path parses the body twice
        data = data.replace(b'"confidence": 0.5', b'"confidence": 1.5', 1)
    with open(f"/proc/{os.getpid()}/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS
    resident = _status("VmRSS:")
    try:
        parse_rows(data, partial=partial)
        outcome = "parsed"
    except ShiftwatchError as exc:
        outcome = f"refused: {exc.message[:60]}"
    peak = _status("VmHWM:") - resident
    return {"kind": kind, "partial": partial, "bytes": len(data), "values": data.count(b",") + 1,
            "objects": data.count(b"{"), "peak_mib": round(peak / MIB, 1), "charged_mib": round(parse_cost(data) / MIB, 1),
            "outcome": outcome}  # fmt: skip


def measure(kind: str, partial: bool = False, size: int = 16 * MIB) -> dict:
    """Parse a ``kind`` body of ``size`` bytes in a fresh interpreter: its peak memory over the resident
    set before, and what ingest charges for it."""
    done = subprocess.run([sys.executable, "-m", "tests.support.json_cost", kind, "1" if partial else "0", str(size)],
                          capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    return json.loads(done.stdout)


if __name__ == "__main__":
    print(json.dumps(_measure_here(sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]))))
