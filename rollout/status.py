"""What a person sees about a rollout: its state, the latest comparison, the candidate's report, the audit trail."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.errors import Invalid
from shiftwatch.rollout.controller import candidate_report, get_rollout
from shiftwatch.rollout.schemas import AuditOut, ComparisonOut, RolloutOut
from shiftwatch.rollout.tables import ROLLOUT_STATES, AuditLog, Comparison, Rollout

# What a finished rollout's last transition was, in words.
FINAL_ACTIONS = {"approve": "approved", "reject": "rejected", "auto_rollback": "rolled back on a guardrail"}


def standing(rollout: Rollout, final: AuditLog | None) -> str:
    """The state the controller holds, in a line: its latest decision while active, the final transition after."""
    if rollout.state in ("shadow", "canary"):
        decision = rollout.last_decision.get("decision")
        return f"{rollout.state}: controller says {decision}" if decision else f"{rollout.state}: not judged yet"
    if final is None:
        return rollout.state
    verb = FINAL_ACTIONS.get(final.action, final.action)
    how = " (forced)" if final.forced else ""
    return f"{rollout.state}: {verb}{how} by {final.actor} at {final.ts:%Y-%m-%d %H:%M:%S}: {final.reason}"


def current_share(rollout: Rollout) -> float:
    """The share of traffic the candidate answers now: its canary step's share, 0 outside the canary."""
    steps = rollout.plan.get("canary_steps", [0.0])
    return float(steps[min(rollout.step, len(steps) - 1)]) if rollout.state == "canary" else 0.0


def describe(session: Session, rollout: Rollout, *, with_audit: bool = True) -> RolloutOut:
    model = session.get(Model, rollout.model_id)
    candidate = session.get(ModelVersion, rollout.candidate_version_id)
    baseline = session.get(ModelVersion, rollout.baseline_version_id)
    latest = session.scalar(
        select(Comparison).where(Comparison.rollout_id == rollout.id).order_by(Comparison.id.desc()).limit(1)
    )
    audit = (
        list(session.scalars(select(AuditLog).where(AuditLog.rollout_id == rollout.id).order_by(AuditLog.id)))
        if with_audit
        else []
    )
    final = session.scalar(
        select(AuditLog).where(AuditLog.rollout_id == rollout.id, AuditLog.to_state == rollout.state)
        .order_by(AuditLog.id.desc()).limit(1)
    )
    return RolloutOut(
        id=rollout.id,
        model=model.name if model else "?",
        candidate_version=candidate.version if candidate else "?",
        baseline_version=baseline.version if baseline else "?",
        state=rollout.state,
        step=rollout.step,
        share=current_share(rollout),
        plan=rollout.plan,
        last_decision=rollout.last_decision,
        standing=standing(rollout, final),
        created_by=rollout.created_by,
        created_at=rollout.created_at,
        updated_at=rollout.updated_at,
        compression_report=candidate_report(session, rollout),
        latest_comparison=ComparisonOut.model_validate(latest) if latest else None,
        audit=[AuditOut.model_validate(a) for a in audit],
    )


def describe_id(session: Session, rollout_id: int) -> RolloutOut:
    return describe(session, get_rollout(session, rollout_id))


def list_rollouts(session: Session, model: str | None = None, state: str | None = None) -> list[RolloutOut]:
    """Newest first, of one model and in one state when given; an unknown state is bad input, not an empty list."""
    if state is not None and state not in ROLLOUT_STATES:
        raise Invalid("state", f"{state!r} is not a rollout state; one of {', '.join(ROLLOUT_STATES)}")
    stmt = select(Rollout).order_by(Rollout.id.desc())
    if model is not None:
        stmt = stmt.join(Model, Model.id == Rollout.model_id).where(Model.name == model)
    if state is not None:
        stmt = stmt.where(Rollout.state == state)
    return [describe(session, r, with_audit=False) for r in session.scalars(stmt)]
