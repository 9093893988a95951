"""The labeling queue in the database: what enters it (selection, enqueue), the budget, and its status."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, overload

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.models import Model, ModelVersion, Prediction
from shiftwatch.collector.queries import Window, window
from shiftwatch.db import utcnow
from shiftwatch.errors import Invalid
from shiftwatch.labeling import selection
from shiftwatch.labeling.models import REASONS, TASK_STATES, Label, LabelTask
from shiftwatch.labeling.selection import Candidate
from shiftwatch.settings import Settings

# Embeddings of already-queued tasks that a new batch keeps its distance from (bounded: k-center is O(n * k)).
EXISTING_CENTERS = 2000
# Backoff between push attempts: 30 s doubling up to one hour, so a long outage costs ~1 try an hour.
BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 3600


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A prediction someone outside the policy wants labeled (e.g. a shadow/production disagreement)."""

    prediction_id: uuid.UUID
    score: float = 1.0  # in [0, 1]: how strongly it deserves a label, ranks it within its reason's band
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlaggedItem:
    """A sample a drift detector flagged as atypical, with its score in the detector's own unit."""

    prediction_id: uuid.UUID
    score: float
    method: str = "detector"


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    queued: int
    already_queued: int
    over_budget: int
    not_found: int
    by_reason: dict[str, int]


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """What a person asks about the queue: how much is waiting, sent, labeled, and why the last push failed."""

    model: str
    by_state: dict[str, int]
    by_reason: dict[str, int]
    labels: int
    budget_today: int
    queued_today: int
    retrying: int
    last_error: str | None
    oldest_pending: datetime | None


def backoff_s(attempts: int) -> float:
    return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(attempts - 1, 0)))


def daily_budget(settings: Settings, model_name: str) -> int:
    return settings.labeling_daily_budgets.get(model_name, settings.labeling_daily_budget)


def queued_today(session: Session, model_id: int, now: datetime) -> int:
    day_start = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    stmt = (
        select(func.count())
        .select_from(LabelTask)
        .join(ModelVersion, ModelVersion.id == LabelTask.model_version_id)
        .where(ModelVersion.model_id == model_id, LabelTask.created_at >= day_start)
    )
    return int(session.scalar(stmt) or 0)


def _already_queued(session: Session, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for start in range(0, len(ids), 500):  # 500: well under every backend's bound-parameter limit
        chunk = ids[start : start + 500]
        found.update(session.scalars(select(LabelTask.prediction_id).where(LabelTask.prediction_id.in_(chunk))))
    return found


def _prediction_rows(session: Session, model_version_id: int, ids: list[uuid.UUID]) -> list[Prediction]:
    rows: list[Prediction] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        stmt = select(Prediction).where(Prediction.model_version_id == model_version_id, Prediction.id.in_(chunk))
        rows.extend(session.scalars(stmt))
    return rows


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f4").astype(np.float32)


def _blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype="<f4").tobytes()


def candidate_from_row(row: Prediction, reason: str, priority: float, evidence: dict[str, Any]) -> Candidate:
    return Candidate(
        prediction_id=row.id,
        ts=row.ts,
        model_version_id=row.model_version_id,
        predicted_class=row.predicted_class,
        confidence=row.confidence,
        input_ref=row.input_ref,
        embedding=_vector(row.embedding),
        probabilities=_vector(row.probabilities),
        reason=reason,
        priority=priority,
        evidence=evidence,
    )


def insert_candidates(session: Session, candidates: list[Candidate], now: datetime) -> int:
    """Store picked candidates as pending tasks; ones queued meanwhile (by another process) are skipped."""
    queued = _already_queued(session, [c.prediction_id for c in candidates])
    fresh = [c for c in candidates if c.prediction_id not in queued]
    if not fresh:
        return 0
    for candidate in fresh:
        if candidate.reason not in REASONS:
            raise Invalid("reason", f"must be one of {', '.join(REASONS)}")
    session.add_all(
        LabelTask(
            prediction_id=c.prediction_id,
            ts=c.ts,
            model_version_id=c.model_version_id,
            input_ref=c.input_ref,
            embedding=_blob(c.embedding),
            probabilities=_blob(c.probabilities),
            predicted_class=c.predicted_class,
            confidence=float(c.confidence),
            reason=c.reason,
            priority=float(c.priority),
            evidence=_jsonable(c.evidence),
            state="pending",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        for c in fresh
    )
    session.flush()
    return len(fresh)


def _jsonable(evidence: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(evidence)


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
    if reason not in REASONS:
        raise Invalid("reason", f"must be one of {', '.join(REASONS)}")
    now = now or utcnow()
    version = session.get(ModelVersion, model_version_id)
    if version is None:
        raise Invalid("model_version_id", f"model version {model_version_id} does not exist")
    wanted = {i.prediction_id if isinstance(i, QueueItem) else i: i for i in items}
    normalized = {pid: i if isinstance(i, QueueItem) else QueueItem(pid) for pid, i in wanted.items()}
    queued = _already_queued(session, list(normalized))
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

    def at(self, i: int, reason: str = "random", priority: float = 0.0, evidence: dict | None = None) -> Candidate:
        w = self.win
        return Candidate(
            prediction_id=w.ids[i],
            ts=_as_utc(w.ts[i]),
            model_version_id=self.model_version_id,
            predicted_class=int(w.predicted_class[i]),
            confidence=float(w.confidence[i]),
            input_ref=w.input_ref[i],
            embedding=None if w.embeddings is None else w.embeddings[i],
            probabilities=None if w.probabilities is None else w.probabilities[i],
            reason=reason,
            priority=priority,
            evidence=evidence or {},
        )


def _as_utc(value: np.datetime64) -> datetime:
    return value.astype("datetime64[us]").item().replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class SelectionResult:
    model: str
    considered: int
    queued: int
    by_reason: dict[str, int]
    budget_left: int


def select_for_labeling(
    session: Session,
    settings: Settings,
    model_name: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    batch_size: int | None = None,
    flagged: Sequence[FlaggedItem] | None = None,
    now: datetime | None = None,
    seed: int | None = None,
) -> SelectionResult:
    """Run the policy over the production version's predictions in [start, end) and queue one batch.

    ``flagged`` defaults to what the drift detectors flagged since ``start``. The batch is at
    most ``batch_size`` (settings.labeling_batch_size) and what is left of the model's daily budget.
    """
    from shiftwatch.labeling.flags import detector_flags

    now = now or utcnow()
    start = start or now - timedelta(days=1)
    model = registry.get_model(session, model_name)
    versions = registry.versions_in_state(session, model_name, "production")
    room = max(daily_budget(settings, model_name) - queued_today(session, model.id, now), 0)
    budget = min(batch_size or settings.labeling_batch_size, room)
    considered = 0
    by_reason: dict[str, int] = {}
    rng = np.random.default_rng(seed)
    for version in versions:
        if budget <= 0:
            break
        win = window(session, version.id, start=start, end=end or now, route="production")
        considered += len(win)
        flags = list(flagged) if flagged is not None else detector_flags(session, version.id, since=start)
        picked = _plan(session, version.id, win, flags, budget, rng)
        stored = insert_candidates(session, picked, now)
        budget -= stored
        for c in picked:
            by_reason[c.reason] = by_reason.get(c.reason, 0) + 1
    return SelectionResult(
        model=model_name, considered=considered, queued=sum(by_reason.values()), by_reason=by_reason,
        budget_left=max(room - sum(by_reason.values()), 0),
    )


def _plan(
    session: Session, version_id: int, win: Window, flags: list[FlaggedItem], budget: int, rng: np.random.Generator
) -> list[Candidate]:
    queued = _already_queued(session, list(win.ids))
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
    return selection.plan_batch(informative, everyone, budget, rng=rng, existing=_existing_centers(session, version_id))


def _flagged_candidates(session: Session, version_id: int, flags: list[FlaggedItem]) -> list[Candidate]:
    # A flag may name a prediction outside this window, so its queue check is its own.
    queued = _already_queued(session, [f.prediction_id for f in flags])
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


def _existing_centers(session: Session, version_id: int) -> np.ndarray | None:
    stmt = (
        select(LabelTask.embedding)
        .where(LabelTask.model_version_id == version_id, LabelTask.state.in_(("pending", "sent")))
        .where(LabelTask.embedding.is_not(None))
        .order_by(LabelTask.created_at.desc())
        .limit(EXISTING_CENTERS)
    )
    blobs = [blob for blob in session.scalars(stmt) if blob is not None]  # the query keeps non-null ones
    if not blobs:
        return None
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1).astype(np.float32)


def tasks_of_model(model_name: str) -> Select[LabelTask]:
    """A select() of the model's tasks (all versions), for callers to narrow further."""
    return (
        select(LabelTask)
        .join(ModelVersion, ModelVersion.id == LabelTask.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Model.name == model_name)
    )


def queue_status(session: Session, settings: Settings, model_name: str, now: datetime | None = None) -> QueueStatus:
    now = now or utcnow()
    model = registry.get_model(session, model_name)
    version_ids = select(ModelVersion.id).where(ModelVersion.model_id == model.id)
    in_model = LabelTask.model_version_id.in_(version_ids)
    by_state = dict.fromkeys(TASK_STATES, 0)
    by_state.update(session.execute(select(LabelTask.state, func.count()).where(in_model).group_by(LabelTask.state)).tuples().all())
    by_reason = dict(session.execute(select(LabelTask.reason, func.count()).where(in_model).group_by(LabelTask.reason)).tuples().all())
    pending_failed = select(LabelTask).where(in_model, LabelTask.state == "pending", LabelTask.attempts > 0)
    retrying = int(session.scalar(select(func.count()).select_from(pending_failed.subquery())) or 0)
    last_failed = session.scalar(pending_failed.order_by(LabelTask.updated_at.desc()).limit(1))
    oldest = session.scalar(select(func.min(LabelTask.created_at)).where(in_model, LabelTask.state == "pending"))
    labels = int(session.scalar(select(func.count()).select_from(Label).where(Label.model_version_id.in_(version_ids))) or 0)
    return QueueStatus(
        model=model_name,
        by_state=by_state,
        by_reason=by_reason,
        labels=labels,
        budget_today=daily_budget(settings, model_name),
        queued_today=queued_today(session, model.id, now),
        retrying=retrying,
        last_error=None if last_failed is None else last_failed.last_error,
        oldest_pending=oldest,
    )
