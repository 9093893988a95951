"""What a drift run carries between its phases, and what a tick reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shiftwatch.collector.queries import Window
from shiftwatch.detectors import evidence, harm
from shiftwatch.detectors.base import DriftResult
from shiftwatch.detectors.models import DetectorConfig


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one call of ``run_due_detectors`` (or one model version of it) did; ids of alerts touched."""

    tick: datetime
    runs: int = 0
    flagged: int = 0
    opened: tuple[int, ...] = ()
    updated: tuple[int, ...] = ()
    failed_versions: tuple[int, ...] = ()
    quiet: tuple[int, ...] = ()  # configs with no new data since their last run: nothing written but the check

    def __add__(self, other: "TickReport") -> "TickReport":
        return TickReport(
            tick=self.tick,
            runs=self.runs + other.runs,
            flagged=self.flagged + other.flagged,
            opened=self.opened + other.opened,
            updated=self.updated + other.updated,
            failed_versions=self.failed_versions + other.failed_versions,
            quiet=self.quiet + other.quiet,
        )


@dataclass(slots=True)
class Outcome:
    """One config's run as it goes through the read, compute and write phases (mutable on purpose)."""

    config: DetectorConfig
    window: Window | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    result: DriftResult | None = None
    verdict: DriftResult | None = None  # the result under the config's min_effect
    note: str | None = None
    new_state: bytes | None = None
    min_effect: float | None = None  # a config's explicit practical threshold; None: the detector's rule
    duration_ms: float = 0.0
    adjusted_p: float | None = None
    decision: bool = False
    harm: harm.Harm | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    atypical: list[evidence.AtypicalSample] = field(default_factory=list)
    report_path: str | None = None  # relative to data_dir
    watermark: datetime | None = None
    test_key: str | None = None
