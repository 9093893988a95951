"""Peak memory of parsing a 16 MiB JSON ingest body, by shape, against what ingest charges for it (issue 27.1).

Each body is parsed in a fresh interpreter (tests/support/json_cost.py) so the peak is the parse's
alone. ``charged_mib`` is ``collector.json_rows.parse_cost``: it must stay at or above ``peak_mib``
for every shape, or concurrent bodies could hold more than SHIFTWATCH_MAX_PARSE_BYTES. Writes
bench/results/json_parse_cost.json.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support imports

from machine import machine_facts

from tests.support.json_cost import KINDS, measure

RESULTS = Path(__file__).parent / "results" / "json_parse_cost.json"


def main() -> None:
    runs = [measure(kind, partial) for kind in KINDS for partial in (False, True)]
    print(f"{'shape':16} {'partial':>7} {'values':>9} {'rows':>7} {'peak MiB':>9} {'charged MiB':>11}  outcome")
    for r in runs:
        print(f"{r['kind']:16} {r['partial']!s:>7} {r['values']:>9} {r['objects']:>7} {r['peak_mib']:>9} "
              f"{r['charged_mib']:>11}  {r['outcome']}")  # fmt: skip
    worst = max(r["peak_mib"] / r["charged_mib"] for r in runs)
    print(f"worst peak/charge: {worst:.2f} (must stay <= 1)")
    RESULTS.write_text(json.dumps({"machine": machine_facts(), "python": platform.python_version(), "runs": runs,
                                   "worst_peak_over_charge": round(worst, 3)}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
