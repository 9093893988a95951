"""The audit slice: a uniform random sample of every route that carries traffic, for unbiased accuracy.

Production, shadow and canary predictions each get their own slice (reason ``random``), so a
candidate's canary predictions get labels as surely as production's: the rollout's accuracy
test compares the two arms on labels of this slice only. Selection elsewhere is biased on
purpose (uncertain, flagged, disagreeing samples); this slice is what keeps a rate honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.queries import Window
from shiftwatch.collector.tables import ModelVersion, Prediction
from shiftwatch.labeling.queue import already_queued
from shiftwatch.labeling.selection import PRIORITY_BASE, Candidate


@dataclass(frozen=True, slots=True)
class TrafficRoute:
    """One version's predictions on one route within a selection window."""

    version_id: int
    version: str
    route: str


def traffic_routes(session: Session, model_id: int, start: datetime, end: datetime) -> list[TrafficRoute]:
    """Every (version, route) of the model with predictions in [start, end): production first, then by version."""
    stmt = (
        select(Prediction.model_version_id, ModelVersion.version, Prediction.route)
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .where(ModelVersion.model_id == model_id, Prediction.ts >= start, Prediction.ts < end)
        .group_by(Prediction.model_version_id, ModelVersion.version, Prediction.route)
    )
    found = [TrafficRoute(*row) for row in session.execute(stmt).tuples()]
    return sorted(found, key=lambda r: (r.route != "production", r.version_id, r.route))


def shares(total: int, routes: int, each: int) -> list[int]:
    """``each`` per route when ``total`` allows it; otherwise ``total`` split as evenly as it goes (earlier routes first)."""
    if routes == 0:
        return []
    if total >= each * routes:
        return [each] * routes
    base, extra = divmod(max(total, 0), routes)
    return [base + (i < extra) for i in range(routes)]


class WindowCandidates(Sequence[Candidate]):
    """A window's rows as candidates, built on access: the random slice touches only the rows it draws."""

    def __init__(self, win: Window, rows: np.ndarray, model_version_id: int) -> None:
        self.win, self.rows, self.model_version_id = win, rows, model_version_id

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> Candidate: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Candidate]: ...
    def __getitem__(self, index: int | slice) -> Candidate | Sequence[Candidate]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.at(int(self.rows[index]))

    def at(
        self, i: int, reason: str = "random", priority: float = 0.0, evidence: dict[str, Any] | None = None
    ) -> Candidate:
        w = self.win
        return Candidate(
            prediction_id=w.ids[i],
            ts=_as_utc(w.ts[i]),
            model_version_id=self.model_version_id,
            predicted_class=int(w.predicted_class[i]),
            confidence=float(w.confidence[i]),
            input_ref=w.input_ref[i],
            embedding=w.embedding(i),
            probabilities=None if w.probabilities is None else w.probabilities[i],
            reason=reason,
            priority=priority,
            evidence=evidence or {},
        )


def _as_utc(value: np.datetime64) -> datetime:
    return value.astype("datetime64[us]").item().replace(tzinfo=UTC)


def audit_sample(
    session: Session, route: TrafficRoute, win: Window, size: int, rng: np.random.Generator
) -> list[Candidate]:
    """Up to ``size`` of the window's predictions drawn uniformly among those with a stored input and no task yet."""
    if size <= 0 or not len(win):
        return []
    queued = already_queued(session, list(win.ids))
    usable = np.asarray([i for i in range(len(win)) if win.input_ref[i] is not None and win.ids[i] not in queued], dtype=np.int64)
    if not len(usable):
        return []
    everyone = WindowCandidates(win, usable, route.version_id)
    picks = sorted(int(i) for i in rng.choice(len(usable), size=min(size, len(usable)), replace=False))
    evidence = {"slice": "audit", "route": route.route, "version": route.version}
    return [everyone.at(int(usable[i]), "random", PRIORITY_BASE["random"], evidence) for i in picks]
