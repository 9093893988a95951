"""Rolling a version out again after a rollback or a rejection (``kubectl argo rollouts retry``'s counterpart).

A rolled-back or rejected rollout stays finished, with its audit trail; ``retry`` starts a new
rollout of the same candidate version, from shadow, against today's production version, and its
audit log says which rollout it retries and why. A version that reached production cannot come
back this way: that needs a new version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.errors import Conflict
from shiftwatch.rollout.schemas import validated_plan
from shiftwatch.rollout.tables import AuditLog, Rollout

RETRYABLE = ("rolled_back", "rejected")
REGISTER_AGAIN = "shiftwatch retrain register --model {model} --version <new version> ..."


def latest_rollout_of(session: Session, version_id: int) -> Rollout | None:
    return session.scalar(
        select(Rollout).where(Rollout.candidate_version_id == version_id).order_by(Rollout.id.desc()).limit(1)
    )


def not_a_candidate(session: Session, model: str, version: ModelVersion) -> Conflict:
    """Why ``rollout start`` refuses a version that is no longer a candidate, with the command that comes next."""
    if version.state in RETRYABLE:
        last = latest_rollout_of(session, version.id)
        if last is not None:
            final = session.scalar(select(AuditLog).where(AuditLog.rollout_id == last.id, AuditLog.to_state == last.state)
                                   .order_by(AuditLog.id.desc()).limit(1))  # fmt: skip
            why = f" ({final.reason})" if final is not None and final.reason else ""
            verb = "rolled back" if version.state == "rolled_back" else "rejected"
            return Conflict(
                f"version {version.version!r} was {verb} in rollout {last.id}{why}; roll the same version out "
                f"again with `shiftwatch rollout retry {last.id}`, or register a fixed model as a new version "
                f"(`{REGISTER_AGAIN.format(model=model)}`) and start that"
            )
    return Conflict(
        f"version {version.version!r} is {version.state}; only a candidate can be rolled out: register a new version "
        f"(`{REGISTER_AGAIN.format(model=model)}`) and start that"
    )


def retry_rollout(
    session: Session,
    data_dir: Path,
    rollout_id: int,
    *,
    actor: str,
    plan_changes: dict[str, Any] | None = None,
    reason: str = "",
) -> Rollout:
    """A new rollout of a rolled-back or rejected rollout's candidate: its plan, with ``plan_changes`` on top."""
    from shiftwatch.rollout import controller  # the controller imports this module for its refusals

    previous = controller.get_rollout(session, rollout_id, lock=True)
    if previous.state not in RETRYABLE:
        raise Conflict(f"rollout {rollout_id} is {previous.state}; only a rolled-back or rejected rollout can be retried")
    latest = latest_rollout_of(session, previous.candidate_version_id)
    if latest is not None and latest.id != previous.id:
        raise Conflict(f"rollout {latest.id} already rolls out the same version; see `shiftwatch rollout status {latest.id}`")
    candidate = session.get(ModelVersion, previous.candidate_version_id)
    model = session.get(Model, previous.model_id)
    if candidate is None or model is None:
        raise Conflict(f"rollout {rollout_id}'s candidate version no longer exists")
    if candidate.state not in RETRYABLE:  # e.g. bootstrapped to production since
        raise Conflict(f"version {candidate.version!r} is {candidate.state} now; it cannot be rolled out again")
    registry.set_version_state(session, candidate.id, "candidate")  # undone with the transaction if the start fails
    chosen = validated_plan({**previous.plan, **(plan_changes or {})})
    rollout = controller.start_rollout(session, data_dir, model.name, candidate.version, chosen, actor=actor)
    controller.audit(session, rollout, actor=actor, action="retry", from_state=None, to_state="shadow",
                     reason=f"retry of rollout {rollout_id} ({previous.state})" + (f": {reason}" if reason.strip() else ""),
                     evidence={"retry_of": rollout_id})  # fmt: skip
    session.flush()
    return rollout
