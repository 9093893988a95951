"""What enters the labeling queue: a selection run over a window, named predictions (``enqueue``), the daily budget.

Applies ``selection.py``'s pure rules (reasons, priority bands, diversity) to stored
predictions and hands what it picks to ``queue.py``, which stores it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.queries import Window, window
from shiftwatch.collector.tables import ModelVersion, Prediction
from shiftwatch.db import utcnow
from shiftwatch.errors import Invalid
from shiftwatch.labeling import selection
from shiftwatch.labeling.audit import WindowCandidates, audit_sample, shares, traffic_routes
from shiftwatch.labeling.flags import FlaggedItem, detector_flags
from shiftwatch.labeling.queue import (
    IN_CHUNK,
    INFORMATIVE,
    already_queued,
    existing_centers,
    insert_candidates,
    queued_today,
)
from shiftwatch.labeling.selection import Candidate
from shiftwatch.settings import Settings


@dataclass(frozen=True, slots=True)
class Budget:
    """How many tasks a model's queue may take: per UTC day (all sources), and per selection run.

    ``audit`` is the audit slice per route carrying traffic, per run. ``audit_share`` of each batch
    goes to the audit slice first; while shadow or canary traffic is in the window (a candidate is
    being judged), the informative picks (uncertain, flagged) also take no more than the rest of
    the daily budget, so the canary's arms keep getting labels all day. Whatever either leaves
    unused in a run, the other may take.
    """

    daily: int
    batch: int
    audit: int = 0
    audit_share: float = 0.0

    @classmethod
    def of(cls, settings: Settings, model_name: str, batch_size: int | None = None) -> Budget:
        """The model's budget: the one place the server, the CLI, the console and the scheduled job read it.

        ``labeling_daily_budgets`` overrides the default per model; ``batch_size`` overrides the batch.
        """
        daily = settings.labeling_daily_budgets.get(model_name, settings.labeling_daily_budget)
        return cls(daily=daily, batch=batch_size or settings.labeling_batch_size,
                   audit=settings.labeling_audit_per_route, audit_share=settings.labeling_audit_share)

    @property
    def informative_daily(self) -> int:
        """Tasks per day uncertain and flagged picks may take: the daily budget less the audit's share."""
        return self.daily - math.ceil(self.audit_share * self.daily)


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A prediction someone outside the policy wants labeled (e.g. a shadow/production disagreement)."""

    prediction_id: uuid.UUID
    score: float = 1.0  # in [0, 1]: how strongly it deserves a label, ranks it within its reason's band
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    queued: int
    already_queued: int
    over_budget: int
    not_found: int
    by_reason: dict[str, int]


@dataclass(frozen=True, slots=True)
class SelectionResult:
    model: str
    considered: int
    queued: int
    by_reason: dict[str, int]
    budget_left: int


def _prediction_rows(session: Session, model_version_id: int, ids: list[uuid.UUID]) -> list[Prediction]:
    rows: list[Prediction] = []
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        stmt = select(Prediction).where(Prediction.model_version_id == model_version_id, Prediction.id.in_(chunk))
        rows.extend(session.scalars(stmt))
    return rows


def candidate_from_row(row: Prediction, reason: str, priority: float, evidence: dict[str, Any]) -> Candidate:
    return Candidate(
        prediction_id=row.id,
        ts=row.ts,
        model_version_id=row.model_version_id,
        predicted_class=row.predicted_class,
        confidence=row.confidence,
        input_ref=row.input_ref,
        embedding=row.embedding,
        probabilities=row.probabilities,
        reason=reason,
        priority=priority,
        evidence=evidence,
    )


def enqueue(
    session: Session,
    model_version_id: int,
    items: Sequence[QueueItem | uuid.UUID],
    reason: str,
    *,
    daily_budget: int | None = None,
    now: datetime | None = None,
) -> EnqueueResult:
    """Queue named predictions of one version for labeling (what the rollout controller calls for disagreements).

    Each prediction is queued at most once; with ``daily_budget`` the model's queue takes no
    more than that many per UTC day (highest score first). Predictions without a stored
    input cannot be shown to a person and count as ``not_found``.
    """
    if reason not in selection.PRIORITY_BASE:
        raise Invalid("reason", f"must be one of {', '.join(selection.PRIORITY_BASE)}")
    now = now or utcnow()
    version = session.get(ModelVersion, model_version_id)
    if version is None:
        raise Invalid("model_version_id", f"model version {model_version_id} does not exist")
    wanted = {i.prediction_id if isinstance(i, QueueItem) else i: i for i in items}
    normalized = {pid: i if isinstance(i, QueueItem) else QueueItem(pid) for pid, i in wanted.items()}
    queued = already_queued(session, list(normalized))
    rows = {r.id: r for r in _prediction_rows(session, model_version_id, [p for p in normalized if p not in queued])}
    base = selection.PRIORITY_BASE[reason]
    candidates = [
        candidate_from_row(row, reason, base + min(max(normalized[pid].score, 0.0), 1.0), normalized[pid].evidence)
        for pid, row in rows.items()
        if row.input_ref is not None
    ]
    candidates.sort(key=lambda c: -c.priority)
    over = 0
    if daily_budget is not None:
        room = max(daily_budget - queued_today(session, version.model_id, now), 0)
        over, candidates = max(len(candidates) - room, 0), candidates[:room]
    stored = insert_candidates(session, candidates, now)
    return EnqueueResult(
        queued=stored,
        already_queued=len(queued),
        over_budget=over,
        not_found=len(normalized) - len(queued) - len(candidates) - over,
        by_reason={reason: stored} if stored else {},
    )


def select_for_labeling(
    session: Session,
    model_name: str,
    budget: Budget,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    flagged: Sequence[FlaggedItem] | None = None,
    now: datetime | None = None,
    seed: int | None = None,
) -> SelectionResult:
    """Queue one batch from the model's predictions in [start, end): the audit slice, then informative picks.

    The audit slice samples every route that carries traffic (production, shadow, canary) uniformly
    (``audit.py``); uncertain and flagged picks come from the production version(s). ``flagged``
    defaults to what the drift detectors flagged since ``start``. The batch is at most ``budget.batch``
    and what is left of the model's daily budget; see :class:`Budget` for the audit's share.
    """
    now = now or utcnow()
    start, end = start or now - timedelta(days=1), end or now
    model = registry.get_model(session, model_name)
    room = max(budget.daily - queued_today(session, model.id, now), 0)
    left = min(budget.batch, room)
    rng = np.random.default_rng(seed)
    routes = traffic_routes(session, model.id, start, end)
    windows = {(r.version_id, r.route): window(session, r.version_id, start=start, end=end, route=r.route) for r in routes}
    picked: list[Candidate] = []

    def take(candidates: list[Candidate]) -> int:
        stored = insert_candidates(session, candidates, now)
        picked.extend(candidates)
        return stored

    first = shares(math.ceil(budget.audit_share * left), len(routes), budget.audit)
    taken = [take(audit_sample(session, r, windows[(r.version_id, r.route)], n, rng)) for r, n in zip(routes, first, strict=True)]
    left -= sum(taken)
    informative_left = left
    if any(r.route != "production" for r in routes):  # a candidate is being judged: its audit labels come first
        informative_left = min(left, max(budget.informative_daily - queued_today(session, model.id, now, INFORMATIVE), 0))
    for version in registry.versions_in_state(session, model_name, "production"):
        if informative_left <= 0:
            break
        win = windows.get((version.id, "production")) or window(session, version.id, start=start, end=end, route="production")
        flags = list(flagged) if flagged is not None else detector_flags(session, version.id, since=start)
        stored = take(_plan(session, version.id, win, flags, informative_left, rng))
        informative_left, left = informative_left - stored, left - stored
    for i, route in enumerate(routes):  # room the informative picks left: the audit slice tops up to its size
        more = min(budget.audit - taken[i], left)
        left -= take(audit_sample(session, route, windows[(route.version_id, route.route)], more, rng))
    by_reason: dict[str, int] = {}
    for c in picked:
        by_reason[c.reason] = by_reason.get(c.reason, 0) + 1
    return SelectionResult(
        model=model_name, considered=sum(len(w) for w in windows.values()), queued=len(picked), by_reason=by_reason,
        budget_left=max(room - len(picked), 0),
    )


def _plan(
    session: Session, version_id: int, win: Window, flags: list[FlaggedItem], budget: int, rng: np.random.Generator
) -> list[Candidate]:
    queued = already_queued(session, list(win.ids))
    usable = np.asarray(
        [i for i in range(len(win)) if win.input_ref[i] is not None and win.ids[i] not in queued], dtype=np.int64
    )
    everyone = WindowCandidates(win, usable, version_id)
    margin = selection.margins(win.probabilities, win.confidence)
    uncertain_priority = selection.uncertainty_priorities(margin)
    informative = [
        everyone.at(int(i), "uncertain", float(uncertain_priority[i]), {"margin": round(float(margin[i]), 4)})
        for i in usable
        if not np.isnan(uncertain_priority[i])
    ]
    informative += _flagged_candidates(session, version_id, flags)
    # random_fraction=0: the audit slice, drawn before, is this run's uniform sample of every route.
    return selection.plan_batch(
        informative, everyone, budget, rng=rng, random_fraction=0.0, existing=existing_centers(session, version_id)
    )


def _flagged_candidates(session: Session, version_id: int, flags: list[FlaggedItem]) -> list[Candidate]:
    # A flag may name a prediction outside this window, so its queue check is its own.
    queued = already_queued(session, [f.prediction_id for f in flags])
    flags = [f for f in flags if f.prediction_id not in queued]
    if not flags:
        return []
    priorities = selection.flagged_priorities(np.asarray([f.score for f in flags]))
    rows = {r.id: r for r in _prediction_rows(session, version_id, [f.prediction_id for f in flags])}
    out = []
    for flag, priority in zip(flags, priorities, strict=True):
        row = rows.get(flag.prediction_id)
        if row is not None and row.input_ref is not None:
            out.append(candidate_from_row(row, "flagged", float(priority), {"score": flag.score, "method": flag.method}))
    return out
