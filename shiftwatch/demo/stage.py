"""The demo's shared state and voice: settings, database, output folder, the timeline, and how acts speak."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shiftwatch.db import Database
from shiftwatch.settings import Settings


@dataclass(frozen=True, slots=True)
class Scale:
    """How much traffic each phase streams; ``fast`` keeps the end-to-end test short."""

    clean_requests: int
    drift_requests: int
    rollout_requests: int
    recovered_requests: int
    batch: int  # requests per accuracy point on the timeline

    @classmethod
    def full(cls) -> "Scale":
        return cls(clean_requests=2000, drift_requests=1500, rollout_requests=1500, recovered_requests=1500, batch=100)

    @classmethod
    def fast(cls) -> "Scale":
        return cls(clean_requests=600, drift_requests=600, rollout_requests=600, recovered_requests=400, batch=100)


@dataclass(frozen=True, slots=True)
class Point:
    """Production accuracy of one batch of served requests (the demo knows the true digit)."""

    step: int  # requests served so far, all routes
    accuracy: float
    phase: str
    version: str


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at a point of the stream: drift onset, alert, promotion."""

    step: int
    label: str


@dataclass
class Timeline:
    """What the HTML summary plots: accuracy over the stream, and the story's events on it."""

    points: list[Point] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    step: int = 0

    def record(self, served: int, accuracy: float, phase: str, version: str) -> None:
        self.step += served
        self.points.append(Point(self.step, accuracy, phase, version))

    def mark(self, label: str) -> None:
        self.events.append(Event(self.step, label))

    def accuracy(self, phase: str) -> float | None:
        values = [p.accuracy for p in self.points if p.phase == phase]
        return sum(values) / len(values) if values else None


@dataclass
class Stage:
    """Everything the acts share. Acts read and add to ``facts``; the summary reads it at the end."""

    settings: Settings
    db: Database
    out_dir: Path
    console: Console
    scale: Scale
    auto_approve: bool
    timeline: Timeline = field(default_factory=Timeline)
    facts: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    resources: list[Any] = field(default_factory=list)  # things with .stop(), stopped at the end
    client: Any = None  # the collector SDK's Client, logging to the demo's API server
    serving: Any = None  # whatever answers requests now (the gateway, or in-process ONNX Runtime)
    traffic: Any = None  # the demo's request source (shiftwatch.demo.traffic.Traffic)

    @contextmanager
    def act(self, number: int, title: str) -> Iterator[None]:
        self.console.rule(f"[bold]Act {number}: {title}")
        yield
        self.console.print()

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def not_built(self, piece: str, consequence: str) -> None:
        """Say plainly that a piece of the loop is not in this build, instead of faking it."""
        self.missing.append(piece)
        self.console.print(f"[yellow]not in this build:[/] {piece}. {consequence}", highlight=False)

    def progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )

    def stop_all(self) -> None:
        if self.client is not None:
            self.client.close()
        for resource in reversed(self.resources):
            resource.stop()
        self.resources.clear()


def has_module(name: str) -> bool:
    """True when a domain module is present (pieces of the loop land one by one)."""
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not name.startswith(exc.name):
            raise
        return False
    return True
