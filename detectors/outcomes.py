"""What each phase of a drift run hands to the next (frozen, one small result per phase), and what a tick reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shiftwatch.collector.queries import Window
from shiftwatch.detectors import harm
from shiftwatch.detectors.base import AtypicalSample, DriftResult
from shiftwatch.detectors.configs import ConfigSpec


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
    failures: tuple[str, ...] = ()  # one line per detector that raised (its run is recorded as failed)

    def __add__(self, other: TickReport) -> TickReport:
        return TickReport(
            tick=self.tick,
            runs=self.runs + other.runs,
            flagged=self.flagged + other.flagged,
            opened=self.opened + other.opened,
            updated=self.updated + other.updated,
            failed_versions=self.failed_versions + other.failed_versions,
            quiet=self.quiet + other.quiet,
            failures=self.failures + other.failures,
        )


@dataclass(frozen=True, slots=True)
class Planned:
    """The read phase's answer for one config to test: its values and the current window at this tick."""

    config: ConfigSpec
    window: Window
    window_start: datetime | None
    window_end: datetime | None
    watermark: datetime | None  # the newest received_at when the window was read (detectors.freshness)
    test_key: str


@dataclass(frozen=True, slots=True)
class Tested:
    """The compute phase's answer: a result, or a note saying why there is none."""

    result: DriftResult | None = None
    note: str | None = None
    new_state: bytes | None = None  # a freshly fitted state to store; None: the stored one was reused
    failed: bool = False  # the detector raised: ``note`` says what, in one line
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Decided:
    """Holm across the version's detectors and the config's effect rule: whether this run is flagged."""

    adjusted_p: float | None = None
    decision: bool = False
    verdict: DriftResult | None = None  # the result under the config's min_effect
    harm: harm.Harm | None = None


@dataclass(frozen=True, slots=True)
class Explained:
    """A flagged run's evidence: shifted dimensions, atypical samples, and its report (if one was written)."""

    summary: dict[str, Any] = field(default_factory=dict)
    atypical: tuple[AtypicalSample, ...] = ()
    report_path: str | None = None  # relative to data_dir


@dataclass(frozen=True, slots=True)
class Outcome:
    """One config's run, phase by phase, as the write phase stores it."""

    planned: Planned
    tested: Tested
    decided: Decided = Decided()
    explained: Explained = Explained()

    @property
    def config(self) -> ConfigSpec:
        return self.planned.config
