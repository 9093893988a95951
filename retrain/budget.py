"""The best model under a budget: compress a small grid of recipes, time each on the target provider, keep the best fit.

"What is the most accurate model I can serve under 16 ms and 4 MB?" is answered by measurement on
the machine that runs the search: every recipe (pruning keep fraction, distillation width, int8 or
fp32) goes through the same ``compress`` as any candidate, its artifact is timed at the budget's
batch size on the budget's provider (one intra-op thread on the CPU, as the gateway serves) and
scored on the evaluation set; the most accurate artifact within budget is the candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from shiftwatch.errors import Invalid, Unavailable
from shiftwatch.retrain.compress import CompressConfig, CompressionResult, onnx_accuracy
from shiftwatch.retrain.measure import time_calls
from shiftwatch.retrain.quantize import TARGETS
from shiftwatch.retrain.runtime import OnnxClassifier

MB = 1_000_000
_KEYS = ("latency_ms", "size_mb", "provider", "batch")


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits a candidate must meet (None: no limit), and where its latency counts."""

    latency_ms: float | None = None  # median time of one call at ``batch`` on ``provider``
    size_mb: float | None = None  # the ONNX artifact's bytes / 1e6
    provider: str = "cpu"
    batch: int = 1

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``latency_ms=16,size_mb=4[,provider=openvino,batch=8]``; a bad key or value names itself."""
        values: dict[str, Any] = {}
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in _KEYS:
                raise Invalid("--budget", f"{part!r} is not key=value with a key of {', '.join(_KEYS)}")
            values[key] = value.strip()
        if values.get("latency_ms") is None and values.get("size_mb") is None:
            raise Invalid("--budget", "names no limit: give latency_ms=..., size_mb=... or both")
        try:
            budget = cls(
                latency_ms=float(values["latency_ms"]) if "latency_ms" in values else None,
                size_mb=float(values["size_mb"]) if "size_mb" in values else None,
                provider=values.get("provider", "cpu").lower(),
                batch=int(values.get("batch", 1)),
            )
        except ValueError as exc:
            raise Invalid("--budget", f"{text!r}: {exc}") from None
        for name in ("latency_ms", "size_mb"):
            limit = getattr(budget, name)
            if limit is not None and not (limit > 0 and np.isfinite(limit)):
                raise Invalid("--budget", f"{name} must be a positive number, got {values[name]!r}")
        if budget.provider not in TARGETS:
            raise Invalid("--budget", f"provider {budget.provider!r} is not one of {', '.join(TARGETS)}")
        if not 1 <= budget.batch <= 1024:
            raise Invalid("--budget", f"batch must be 1-1024, got {budget.batch}")
        return budget

    def misses(self, latency_ms: float, size_mb: float) -> tuple[str, ...]:
        """What a candidate with these measurements exceeds, in words; () when it fits."""
        out = []
        if self.latency_ms is not None and latency_ms > self.latency_ms:
            out.append(f"{latency_ms:.2f} ms > {self.latency_ms:g} ms")
        if self.size_mb is not None and size_mb > self.size_mb:
            out.append(f"{size_mb:.2f} MB > {self.size_mb:g} MB")
        return tuple(out)

    def overshoot(self, latency_ms: float, size_mb: float) -> float:
        """The largest ratio of a measurement to its limit: below 1 fits; the closest misfit has the smallest."""
        ratios = [value / limit for value, limit in ((latency_ms, self.latency_ms), (size_mb, self.size_mb)) if limit]
        return max(ratios, default=0.0)

    def describe(self) -> str:
        limits = [f"latency_ms={self.latency_ms:g}" if self.latency_ms is not None else "",
                  f"size_mb={self.size_mb:g}" if self.size_mb is not None else ""]  # fmt: skip
        return ",".join([*filter(None, limits), f"provider={self.provider}", f"batch={self.batch}"])


@dataclass(frozen=True, slots=True)
class Recipe:
    """One point of the grid: which compression steps, with which pruning keep fraction and student width."""

    name: str
    steps: tuple[str, ...]
    keep_fraction: float | None = None
    width: float | None = None

    def config(self, base: CompressConfig, provider: str) -> CompressConfig:
        """``base`` with this recipe's steps and knobs; int8 in the format ``provider`` runs (fused for the CPU, else QDQ)."""
        return replace(
            base,
            steps=self.steps,
            prune=replace(base.prune, keep_fraction=self.keep_fraction) if self.keep_fraction else base.prune,
            distill=replace(base.distill, width=self.width) if self.width else base.distill,
            quantize=replace(base.quantize, target=provider),
        )


# Small on purpose: every recipe is a compression run (distillation trains a student from scratch).
DEFAULT_GRID = (
    Recipe("fp32", ()),
    Recipe("int8", ("ptq",)),
    Recipe("prune 0.5", ("prune",), keep_fraction=0.5),
    Recipe("prune 0.75 + int8", ("prune", "ptq"), keep_fraction=0.75),
    Recipe("prune 0.5 + int8", ("prune", "ptq"), keep_fraction=0.5),
    Recipe("distill 0.5 + int8", ("distill", "ptq"), width=0.5),
    Recipe("distill 0.25 + int8", ("distill", "ptq"), width=0.25),
)


@dataclass(frozen=True, slots=True)
class Measured:
    """One recipe's artifact as measured: accuracy on the evaluation set, latency on the target, size."""

    recipe: str
    steps_applied: tuple[str, ...]
    accuracy: float
    latency_ms: float
    size_mb: float
    misses: tuple[str, ...]
    pareto: bool = False  # no other candidate is at least as accurate, fast and small, and better in one
    note: str = ""  # e.g. why int8 was declined and the fp32 artifact stands

    @property
    def fits(self) -> bool:
        return not self.misses


@dataclass(frozen=True, slots=True)
class SearchResult:
    budget: Budget
    candidates: tuple[Measured, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # recipe -> why it could not run for this model
    chosen: str | None = None

    def under(self, budget: Budget) -> SearchResult:
        """The same measurements judged against another budget, with its choice (no recipe is run again)."""
        judged = tuple(replace(m, misses=budget.misses(m.latency_ms, m.size_mb)) for m in self.candidates)
        best = choose(judged)
        return SearchResult(budget, judged, self.skipped, best.recipe if best else None)

    def closest(self) -> Measured | None:
        """The candidate nearest the budget (smallest overshoot), for a refusal that says how far off it is."""
        return min(self.candidates, key=lambda m: self.budget.overshoot(m.latency_ms, m.size_mb), default=None)

    def refusal(self) -> str:
        near = self.closest()
        if near is None:
            return f"no recipe ran for this model ({'; '.join(f'{k}: {v}' for k, v in self.skipped.items())})"
        return (f"no candidate fits the budget {self.budget.describe()}: the closest, {near.recipe!r}, measures "
                f"{near.latency_ms:.2f} ms and {near.size_mb:.2f} MB at accuracy {near.accuracy:.3f} "
                f"({'; '.join(near.misses)})")  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "budget": asdict(self.budget),
            "chosen": self.chosen,
            "candidates": [{**asdict(m), "fits": m.fits} for m in self.candidates],
            "skipped": dict(self.skipped),
            "measured_on": "one intra-op thread" if self.budget.provider == "cpu" else self.budget.provider,
        }


def pareto_flags(points: Sequence[tuple[float, float, float]]) -> list[bool]:
    """For (accuracy, latency, size) triples: True where no other point is >=, <=, <= and strictly better in one."""
    flags = []
    for i, (acc, lat, size) in enumerate(points):
        dominated = any(
            a >= acc and la <= lat and s <= size and (a > acc or la < lat or s < size)
            for j, (a, la, s) in enumerate(points) if j != i
        )  # fmt: skip
        flags.append(not dominated)
    return flags


def latency_ms(path: Path, images: np.ndarray, budget: Budget, repeats: int) -> float:
    """Median time of one call at the budget's batch size on its provider (placement checked by the session).

    On the CPU provider (one intra-op thread, computing in the calling thread) the thread's CPU time is
    what counts: on a quiet machine it equals the wall time, on a shared one other processes' bursts do
    not decide which recipe fits. Other providers run in threads or devices of their own: wall time.
    """
    cpu = budget.provider == "cpu"
    classifier = OnnxClassifier(path, budget.provider, threads=1 if cpu else None)
    batch = np.ascontiguousarray(np.resize(images, (budget.batch, *images.shape[1:])), dtype=np.float32)
    feed = {classifier.input_name: batch}
    clock = time.thread_time if cpu else time.perf_counter
    return float(np.median(time_calls(lambda: classifier.session.run(None, feed), repeats, clock=clock)))


Compressor = Callable[[Recipe, CompressConfig, Path], CompressionResult]


def search(
    compress_recipe: Compressor,
    base: CompressConfig,
    budget: Budget,
    evaluation: tuple[np.ndarray, np.ndarray],
    workdir: Path,
    *,
    grid: Sequence[Recipe] = DEFAULT_GRID,
    repeats: int = 50,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[SearchResult, dict[str, CompressionResult]]:
    """Compress every recipe of ``grid`` with ``compress_recipe``, measure it, mark the Pareto front, choose.

    A recipe the model cannot take (a factory without a ``width`` argument cannot be distilled
    into a narrower student) is skipped with its reason; any other error propagates.
    """
    images, labels = evaluation
    measured: list[Measured] = []
    results: dict[str, CompressionResult] = {}
    skipped: dict[str, str] = {}
    for done, recipe in enumerate(grid):
        if progress:
            progress("budget", done, len(grid))
        try:
            result = compress_recipe(recipe, recipe.config(base, budget.provider), workdir / f"recipe-{done}")
        except (Invalid, Unavailable) as exc:
            skipped[recipe.name] = str(exc)
            continue
        results[recipe.name] = result
        latency, size = latency_ms(result.path, images, budget, repeats), result.path.stat().st_size / MB
        outcome = (result.details.get("quantization") or {}).get("outcome", "")
        measured.append(Measured(
            recipe.name, result.steps_applied, round(onnx_accuracy(result.path, images, labels), 4), round(latency, 4),
            round(size, 4), budget.misses(latency, size), note=outcome if outcome.startswith("fp32") else "",
        ))  # fmt: skip
    if progress:
        progress("budget", len(grid), len(grid))
    flags = pareto_flags([(m.accuracy, m.latency_ms, m.size_mb) for m in measured])
    measured = [replace(m, pareto=flag) for m, flag in zip(measured, flags, strict=True)]
    best = choose(measured)
    return SearchResult(budget, tuple(measured), skipped, best.recipe if best else None), results


def choose(candidates: Sequence[Measured]) -> Measured | None:
    """The most accurate candidate that fits; ties go to the faster, then the smaller."""
    return max((m for m in candidates if m.fits), key=lambda m: (m.accuracy, -m.latency_ms, -m.size_mb), default=None)
