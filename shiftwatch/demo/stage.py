"""The demo's shared state and voice: settings, database, output folder, the record it keeps, and how acts speak."""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from shiftwatch.demo.api import Api
from shiftwatch.demo.servers import WebhookReceiver
from shiftwatch.demo.shell import Shell
from shiftwatch.demo.tokens import DemoTokens
from shiftwatch.demo.traffic import Drift, GatewayServing, Traffic
from shiftwatch.settings import Settings


@dataclass(frozen=True, slots=True)
class Scale:
    """How much work each act does; ``fast`` keeps the end-to-end test short."""

    clean_requests: int
    drift_requests: int
    rollout_requests: int  # the most the shadow + canary phase may take before giving up
    recovered_requests: int
    batch: int  # requests per accuracy point on the timeline (and per controller tick)
    detector_window: int  # the detector's current window: the last N production predictions
    labels: int  # samples queued and labeled after the alert
    compress_steps: tuple[str, ...]  # retrain's compression steps for v1 and the candidate
    reference_epochs: int  # training the reference model (v1) from scratch
    finetune_epochs: int  # fine-tuning production into the candidate
    reference_images: int = 0  # images rendered for the reference set (the realistic example; digits: scikit-learn's)
    prune_finetune_epochs: int = 3  # fine-tuning after channel pruning, when "prune" is a compression step
    finetune_lr: float = 1e-3  # fine-tuning production into the candidate: a third of the from-scratch rate
    production_share: float = 0.5  # share of each fine-tuning epoch that is labeled production samples (MixPolicy)

    @classmethod
    def full(cls) -> Scale:
        return cls(clean_requests=1500, drift_requests=1000, rollout_requests=4000, recovered_requests=1000,
                   batch=100, detector_window=300, labels=400, compress_steps=("distill", "prune", "ptq"),
                   reference_epochs=12, finetune_epochs=5)

    @classmethod
    def fast(cls) -> Scale:
        # No compression and fewer epochs: every act still runs, in about a third of the time.
        return cls(clean_requests=600, drift_requests=600, rollout_requests=3000, recovered_requests=400,
                   batch=100, detector_window=300, labels=300, compress_steps=(),
                   reference_epochs=6, finetune_epochs=3)


@dataclass(frozen=True, slots=True)
class Subject:
    """What the story is told about; the acts read everything model-specific from here.

    The digits CNN (``acts.digits_subject``) and the realistic ResNet example
    (``realistic.resnet_subject``) are two of these: the same acts, another model.
    """

    model: str  # the registry name, and the gateway's path /v1/models/{model}/predict
    described: str  # how the narration names v1 ("the reference CNN on scikit-learn's digits")
    reference_data: str  # how it names what v1 was trained on ("the reference digits")
    bootstrap: Callable[[Stage], None]  # act 2: make v1 and register it as production (torch is there)
    traffic: Callable[[], Traffic]  # act 3: production traffic the model never saw, true labels kept
    drift: Drift  # act 4: the corruption injected into all traffic
    scale: Scale
    # The next shift, for a second lap (``shiftwatch demo --laps 2``): it replaces the first; a third lap
    # brings the first back, and so on.
    second_drift: Drift | None = None
    # Act 8's p99 guardrail. Loose because the demo's 16 concurrent clients share 2 cores with everything
    # else: queueing, not the model, sets p99 here (both arms see the same load; a measured run on a busy
    # machine hit 503 ms in shadow, where every request runs both models); heavier models need more.
    latency_budget_ms: float = 1000.0

    def drift_of(self, lap: int) -> Drift:
        """The shift that starts lap ``lap``: the first drift in odd laps, the second in even ones."""
        return self.second_drift if lap % 2 == 0 and self.second_drift is not None else self.drift


@dataclass(frozen=True, slots=True)
class Point:
    """Accuracy of one batch of served requests as users got it (the demo knows the true digit)."""

    step: int  # requests served so far
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


class Stoppable(Protocol):
    """A server or receiver the demo started; ``stop_all`` stops it at the end, in reverse order."""

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Service:
    """What act 3 put in place: the API's address, the traffic the demo sends, and the path that serves it."""

    api_url: str
    traffic: Traffic  # its drift is switched on in act 4
    serving: GatewayServing


# A line of the summary's "What happened" table: a count or a sentence.
Fact = str | int


@dataclass
class Stage:
    """What every act shares: what was fixed before the story began, and the record it keeps.

    Acts add to the record (``timeline``, ``facts``, ``missing``, ``routes``) and to ``resources``;
    what one act hands the next (the API's address, the traffic, the candidate, the rollout) it returns.
    """

    settings: Settings
    shell: Shell  # the CLI, as a user runs it against the demo's store
    out_dir: Path
    console: Console
    subject: Subject
    auto_approve: bool
    laps: int  # how many times the loop runs: a drift, then a promoted fix, ``laps`` times
    receiver: WebhookReceiver  # the loopback stand-in for Slack or PagerDuty
    tokens: DemoTokens
    timeline: Timeline = field(default_factory=Timeline)
    facts: dict[str, Fact] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    resources: list[Stoppable] = field(default_factory=list)
    routes: Counter[str] = field(default_factory=Counter)  # answers per route so far
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    labels_by_annotator: Counter[str] = field(default_factory=Counter)  # labels the demo sent in, by annotator
    server: Api | None = None  # the running API, once act 1 started it
    lap: int = 1  # the lap being told
    promoted_at: datetime | None = None  # when the last promotion happened

    def lap_phase(self, phase: str) -> str:
        """The timeline's phase name in this lap: ``drift`` in the first, ``drift_2`` in the second."""
        return phase if self.lap == 1 else f"{phase}_{self.lap}"

    def lap_key(self, key: str) -> str:
        """A fact's key in this lap (the summary lists each lap's alert, candidate and promotion)."""
        return self.lap_phase(key)

    def lap_label(self, label: str) -> str:
        """An event's label on the timeline in this lap."""
        return label if self.lap == 1 else f"lap {self.lap}: {label}"

    @property
    def api(self) -> Api:
        """The demo's HTTP client to its running server (with the operator's token)."""
        if self.server is None:
            raise RuntimeError("the API is not started yet (act 1 starts it)")
        return self.server

    @property
    def scale(self) -> Scale:
        return self.subject.scale

    @property
    def model(self) -> str:
        return self.subject.model

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

    @staticmethod
    def step_bars(progress: Progress) -> Callable[[str, int, int], None]:
        """A ``(step, done, total)`` callback (retrain's progress protocol) drawing one bar per step."""
        tasks: dict[str, TaskID] = {}

        def update(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        return update

    def stop_all(self) -> None:
        for resource in reversed(self.resources):
            resource.stop()
        self.resources.clear()


def has_module(name: str) -> bool:
    """True when an optional dependency is installed (torch comes with the `train` extra)."""
    return importlib.util.find_spec(name) is not None
