"""A model's first production version: the one promotion that has no production to compare with.

Registering always creates a candidate; afterwards only the rollout controller (and a person's
approval) moves a version into production. A model that has never had a production version has
nothing to shadow, so a person with the ``approve`` scope names its first one here, audited.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.errors import Conflict
from shiftwatch.rollout.controller import audit

# States that show the model has had a production version (promotion retires the one it replaces).
HAD_PRODUCTION = ("production", "retired")


def bootstrap_production(session: Session, model: str, version: str, *, actor: str, reason: str) -> ModelVersion:
    """Make a candidate the first production version of its model; 409 once the model has had one."""
    row = registry.get_version(session, model, version)
    # Lock the model (PostgreSQL): two concurrent bootstraps of one model cannot both find it empty.
    session.scalar(select(Model).where(Model.id == row.model_id).with_for_update())
    if row.state != "candidate":
        raise Conflict(f"version {version!r} is {row.state}; only a candidate can be bootstrapped")
    earlier = session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == row.model_id, ModelVersion.state.in_(HAD_PRODUCTION))
    )
    if earlier is not None:
        raise Conflict(
            f"model {model!r} has had a production version ({earlier.version!r}, now {earlier.state}); "
            "later versions reach production through a rollout (POST /v1/rollouts) and its approval"
        )
    registry.set_version_state(session, row.id, "production")
    audit(
        session,
        None,
        actor=actor,
        action="bootstrap",
        from_state="candidate",
        to_state="production",
        reason=reason or f"first production version of {model}",
        evidence={"model": model, "version": version, "model_version_id": row.id},
    )
    session.flush()
    return row
