"""The rollout state machine: start, the scheduled ``tick`` that advances or rolls back, approve and reject.

candidate -> shadow -> canary (steps) -> production, with rejected (a person) and rolled_back
(a guardrail). All state is in the ``rollouts`` row, so a restarted process resumes mid-canary;
every transition writes an ``audit_log`` row with the actor, the reason and the evidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.db import Database, utcnow
from shiftwatch.detectors.alerts import Outbox
from shiftwatch.errors import Conflict, Invalid, NotFound
from shiftwatch.rollout import handoff
from shiftwatch.rollout.comparisons import LabelLookup, compare_canary, compare_shadow
from shiftwatch.rollout.guardrails import Verdict, judge_canary, judge_shadow
from shiftwatch.rollout.loading import artifact_file, load_verified
from shiftwatch.rollout.retry import not_a_candidate
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.rollout.tables import ACTIVE_STATES, AuditLog, Comparison, Rollout
from shiftwatch.settings import Settings

TRANSITIONS: dict[str, frozenset[str]] = {
    "candidate": frozenset({"shadow", "rejected"}),
    "shadow": frozenset({"canary", "rolled_back", "rejected"}),
    "canary": frozenset({"canary", "production", "rolled_back", "rejected"}),  # canary -> canary: next step
    "production": frozenset(),
    "rejected": frozenset(),
    "rolled_back": frozenset(),
}
CONTROLLER = "controller"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """What one tick did to one rollout."""

    rollout_id: int
    state_before: str
    state_after: str
    decision: str
    reasons: list[str] = field(default_factory=list)


def audit(
    session: Session,
    rollout: Rollout | None,
    *,
    actor: str,
    action: str,
    from_state: str | None,
    to_state: str | None,
    reason: str = "",
    evidence: dict[str, Any] | None = None,
    forced: bool = False,
    now: datetime | None = None,
) -> AuditLog:
    entry = AuditLog(
        rollout_id=None if rollout is None else rollout.id,
        ts=now or utcnow(),
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=to_state,
        reason=reason[:2000],
        forced=forced,
        evidence=evidence or {},
    )
    session.add(entry)
    return entry


def transition(
    session: Session,
    rollout: Rollout,
    to_state: str,
    *,
    actor: str,
    action: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
    forced: bool = False,
    now: datetime | None = None,
) -> None:
    """Move a rollout (and its candidate version's state) and write the audit row; refuses invalid moves."""
    now = now or utcnow()
    from_state = rollout.state
    if to_state not in TRANSITIONS.get(from_state, frozenset()):
        raise Conflict(f"rollout {rollout.id} cannot go from {from_state} to {to_state}")
    rollout.state = to_state
    rollout.updated_at = now
    if to_state != from_state:
        rollout.stage_started_at = now
        rollout.step_started_at = now
        registry.set_version_state(session, rollout.candidate_version_id, to_state)
    if to_state == "production":
        registry.set_version_state(session, rollout.baseline_version_id, "retired")
    audit(
        session,
        rollout,
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        evidence=evidence,
        forced=forced,
        now=now,
    )
    session.flush()


def get_rollout(session: Session, rollout_id: int, *, lock: bool = False) -> Rollout:
    stmt = select(Rollout).where(Rollout.id == rollout_id)
    if lock:
        stmt = stmt.with_for_update()
    rollout = session.scalar(stmt)
    if rollout is None:
        raise NotFound(f"rollout {rollout_id} does not exist")
    return rollout


def list_active(session: Session) -> list[Rollout]:
    return list(session.scalars(select(Rollout).where(Rollout.state.in_(ACTIVE_STATES)).order_by(Rollout.id)))


def start_rollout(
    session: Session, data_dir: Path, model: str, version: str, plan: RolloutPlan, *, actor: str
) -> Rollout:
    """Put a registered candidate into shadow behind the current production version."""
    candidate = registry.get_version(session, model, version)
    if candidate.state != "candidate":
        raise not_a_candidate(session, model, candidate)  # names the command that comes next
    production = registry.versions_in_state(session, model, "production")
    if not production:
        raise Conflict(f"model {model!r} has no production version to compare the candidate with")
    active = session.scalar(
        select(Rollout).where(Rollout.model_id == candidate.model_id, Rollout.state.in_(ACTIVE_STATES))
    )
    if active is not None:
        raise Conflict(f"rollout {active.id} of {model!r} is still {active.state}; finish it first")
    if candidate.artifact_path:
        # Refuse a swapped or corrupted file now, before any traffic (raises Conflict on a sha256 mismatch).
        load_verified(artifact_file(data_dir, candidate.artifact_path), candidate.artifact_sha256)
    # No artifact: the team serves elsewhere and logs both versions through the SDK; only the comparisons run here.
    now = utcnow()
    rollout = Rollout(
        model_id=candidate.model_id,
        candidate_version_id=candidate.id,
        baseline_version_id=production[-1].id,
        state="candidate",
        step=0,
        stage_started_at=now,
        step_started_at=now,
        plan=plan.model_dump(),
        last_decision={},
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(rollout)
    session.flush()
    audit(session, rollout, actor=actor, action="create", from_state=None, to_state="candidate",
          reason=f"{model}:{version} against production {production[-1].version}", now=now)
    transition(session, rollout, "shadow", actor=actor, action="start_shadow",
               reason="candidate mirrors production traffic", now=now)
    return rollout


def _send_new_disagreements(session: Session, rollout: Rollout, disagreements: list, settings: Settings | None) -> int:
    cursor = rollout.last_decision.get("disagreements_until")
    fresh = [d for d in disagreements if cursor is None or d.ts.isoformat() > cursor]
    if not fresh:
        return 0
    return handoff.send_disagreements(session, rollout.candidate_version_id, [d.to_item() for d in fresh], settings)


def evaluate(
    session: Session, rollout: Rollout, now: datetime, labels: LabelLookup
) -> tuple[dict[str, Any], Verdict, list]:
    """Fresh metrics and verdict for a rollout in shadow or canary."""
    plan = RolloutPlan.model_validate(rollout.plan)
    if rollout.state == "shadow":
        metrics, disagreements = compare_shadow(session, rollout, plan, now, labels)
        return metrics, judge_shadow(metrics, plan), disagreements
    metrics = compare_canary(session, rollout, plan, now, labels)
    return metrics, judge_canary(metrics, rollout.step, plan, rollout.id), []


def tick_rollout(
    session: Session, rollout: Rollout, now: datetime, labels: LabelLookup, settings: Settings | None = None
) -> TickOutcome:
    """One judgement of one rollout; with ``settings``, its disagreements are queued within the labeling budget."""
    before = rollout.state
    metrics, verdict, disagreements = evaluate(session, rollout, now, labels)
    queued = _send_new_disagreements(session, rollout, disagreements, settings)
    session.add(Comparison(rollout_id=rollout.id, stage=before, step=rollout.step, computed_at=now,
                           decision=verdict.decision, metrics=metrics))
    previous = rollout.last_decision or {}
    decision = {
        "decision": verdict.decision,
        "reasons": verdict.reasons,
        "evidence_sufficient": verdict.evidence_sufficient,
        "at": now.isoformat(),
        "disagreements_until": max([d.ts.isoformat() for d in disagreements], default=previous.get("disagreements_until")),
        "disagreements_queued": previous.get("disagreements_queued", 0) + queued,
    }
    rollout.last_decision = decision
    evidence = {"metrics": metrics, "reasons": verdict.reasons}
    if verdict.decision == "rollback":
        transition(session, rollout, "rolled_back", actor=CONTROLLER, action="auto_rollback",
                   reason="; ".join(verdict.reasons), evidence=evidence, now=now)
    elif verdict.decision == "advance" and before == "shadow":
        rollout.step = 0
        transition(session, rollout, "canary", actor=CONTROLLER, action="start_canary",
                   reason="; ".join(verdict.reasons), evidence=evidence, now=now)
    elif verdict.decision == "advance":
        rollout.step += 1
        rollout.step_started_at = now
        transition(session, rollout, "canary", actor=CONTROLLER, action="advance_step",
                   reason="; ".join(verdict.reasons), evidence=evidence, now=now)
    elif verdict.decision == "await_approval" and previous.get("decision") != "await_approval":
        audit(session, rollout, actor=CONTROLLER, action="ready_for_approval", from_state="canary",
              to_state="canary", reason="; ".join(verdict.reasons), evidence=evidence, now=now)
    rollout.updated_at = now
    return TickOutcome(rollout.id, before, rollout.state, verdict.decision, verdict.reasons)


def tick(
    db: Database, now: datetime | None = None, labels: LabelLookup | None = None, settings: Settings | None = None
) -> list[TickOutcome]:
    """Judge every rollout in shadow or canary once. Run by the scheduler; callable directly.

    ``settings`` (the scheduler and the CLI pass them) bound the disagreements queued for labeling by the
    model's daily labeling budget, the one ``labeling.policy.Budget.of`` reads for every other source.
    """
    now = now or utcnow()
    labels = labels or handoff.known_labels
    with db.session() as session:
        ids = list(session.scalars(select(Rollout.id).where(Rollout.state.in_(("shadow", "canary")))))
    outcomes = []
    for rollout_id in ids:
        # One transaction per rollout, its row locked: approval and a tick never interleave.
        try:
            with db.session() as session:
                rollout = get_rollout(session, rollout_id, lock=True)
                if rollout.state in ("shadow", "canary"):
                    outcomes.append(tick_rollout(session, rollout, now, labels, settings))
        except Exception:  # one rollout's failure must not stall the others; it is retried next tick
            log.exception("controller tick failed for rollout %d", rollout_id)
    return outcomes


def approve(
    session: Session,
    rollout_id: int,
    *,
    actor: str,
    force: bool = False,
    reason: str = "",
    now: datetime | None = None,
    labels: LabelLookup | None = None,
    outbox: Outbox | None = None,
) -> Rollout:
    """Promote a canary to production; refused while evidence is insufficient unless forced with a reason.

    In the same transaction monitoring passes to the promoted version (``handoff.hand_over_monitoring``):
    its predecessor's detectors, a reference, and the predecessor's alerts resolved with a link here.
    ``outbox``: where those resolutions are announced (``Outbox.of(settings)``); None sends no webhooks.
    """
    now = now or utcnow()
    if force and not reason.strip():
        raise Invalid("reason", "a forced approval needs a reason (it goes in the audit log)")
    rollout = get_rollout(session, rollout_id, lock=True)
    if rollout.state != "canary":
        raise Conflict(f"rollout {rollout_id} is {rollout.state}; only a canary can be approved")
    metrics, verdict, _ = evaluate(session, rollout, now, labels or handoff.known_labels)
    if verdict.decision != "await_approval" and not force:
        raise Conflict("not enough evidence to approve yet: " + "; ".join(verdict.reasons))
    accuracy_decision = metrics["accuracy"]["decision"]
    if accuracy_decision != "not_worse" and not reason.strip():
        # require_labels=false or force lets a canary through an undecided test: a person must say why.
        raise Invalid("reason", f"the accuracy test is {accuracy_decision} (SPRT on labels from the random slice); "
                                "approving anyway needs a reason, which goes in the audit log")
    # Monitoring first, so the approval's audit row carries what it did (one transaction: both or neither).
    handover = handoff.hand_over_monitoring(session, rollout, outbox or Outbox(public_url=""), now)
    transition(session, rollout, "production", actor=actor, action="approve", reason=reason or "approved",
               evidence={"metrics": metrics, "verdict": verdict.decision, "reasons": verdict.reasons,
                         "accuracy_decision": accuracy_decision, "monitoring": handover.evidence()},
               forced=force and verdict.decision != "await_approval", now=now)
    return rollout


def reject(session: Session, rollout_id: int, *, actor: str, reason: str, now: datetime | None = None) -> Rollout:
    rollout = get_rollout(session, rollout_id, lock=True)
    if not reason.strip():
        raise Invalid("reason", "say why the candidate is rejected (it goes in the audit log)")
    if rollout.state not in ACTIVE_STATES:
        raise Conflict(f"rollout {rollout_id} is already {rollout.state}")
    transition(session, rollout, "rejected", actor=actor, action="reject", reason=reason, now=now)
    return rollout


def candidate_report(session: Session, rollout: Rollout) -> dict[str, Any]:
    """The candidate's own report (training and compression), as retrain registered it."""
    version = session.get(ModelVersion, rollout.candidate_version_id)
    return dict(version.report or {}) if version else {}
