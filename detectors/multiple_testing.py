"""Multiple testing across detectors (Holm per model version and tick) and across runs (k in a row).

Within a tick: every detector of one model version tests the same current window, so their
p-values form one family; Holm's step-down adjustment keeps the chance of any false rejection
in the family at alpha without assuming independence (the detectors see the same data, so
they are dependent). Across ticks: a run only pages when ``confirm_runs`` consecutive runs of
the same config were significant and large; with non-overlapping windows under no change,
the per-run chance of a false page is at most alpha ** confirm_runs (see docs/alerts.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypeVar

import numpy as np

T = TypeVar("T", datetime, int)  # a window bound: a datetime in the scheduler, a sample index in tests


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (None stays None: threshold-only detectors are outside the family).

    adjusted p_(i) = max over j <= i of min(1, (m - j + 1) * p_(j)), p sorted ascending;
    rejecting where adjusted p <= alpha is exactly Holm's procedure at level alpha.
    """
    present = [(i, float(p)) for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    if not present:
        return adjusted
    order = sorted(present, key=lambda item: item[1])
    m = len(order)
    running = 0.0
    for rank, (index, p) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def significant(adjusted_p: float | None, alpha: float, detector_drift: bool) -> bool:
    """Significance after adjustment; a detector without a p-value decides by its own threshold."""
    if adjusted_p is None:
        return detector_drift
    return bool(np.isfinite(adjusted_p) and adjusted_p <= alpha)


def confirmed(previous_decisions: Sequence[bool], current: bool, confirm_runs: int) -> bool:
    """True when this run and the ``confirm_runs - 1`` before it (newest first) were all flagged."""
    if not current:
        return False
    needed = max(1, confirm_runs) - 1
    return len(previous_decisions) >= needed and all(previous_decisions[:needed])


def confirming_chain(
    previous: Iterable[tuple[bool, T | None, T | None]], window_start: T | None, needed: int
) -> list[bool]:
    """Of the earlier runs (decision, window start, window end; newest first), those that may confirm a run whose
    window starts at ``window_start``: flagged runs on disjoint windows, walking back.

    A flagged run whose window ends before the chain's oldest window starts joins it; a flagged
    run overlapping it is skipped (it tested some of the same samples: no independent
    confirmation); an unflagged run ends the chain with False. Disjoint windows keep the
    alpha^k bound on false alerts whatever the window and schedule (issue 17).
    """
    chain: list[bool] = []
    boundary = window_start
    for decision, start, end in previous:
        if len(chain) >= needed:
            break
        if not decision:
            chain.append(False)
            break
        if boundary is not None and end is not None and end < boundary:
            chain.append(True)
            boundary = start
    return chain
