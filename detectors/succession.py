"""Monitoring passes to a promoted version: its predecessor's detector configs, a reference, the old alerts closed.

Without this the loop ran once: the promoted version had no reference and no detector, and the
retired version's alerts stayed open for a model nobody serves (issue 23, item 9). The rollout
controller calls ``hand_over`` in the approval's transaction, so a promotion and its monitoring
commit together or not at all.

Which reference: the version's own, if someone pinned one; else what it served during its
rollout (shadow and canary), the traffic a person approved it on. Not its predecessor's: that
describes the traffic before the shift that triggered the retrain (comparing against it would
reopen at once the alert the promotion resolves), and a retrained network's embeddings are
another space than its predecessor's, so an embedding test against them measures the model
change, not the data. A carried ``labeled_accuracy`` scores against the uniform labels of that
window, never retired ones (``labeling retire``): after a concept-drift retrain the labels given
there use the new definition, and so does the promoted version's reference accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.detectors import alerts, configs, references
from shiftwatch.detectors.tables import Alert, DetectorConfig
from shiftwatch.errors import Invalid

# What a carried config keeps of its predecessor: everything a person chose.
CARRIED = ("name", "detector", "params", "input", *configs.EDITABLE)


@dataclass(frozen=True, slots=True)
class Handover:
    """What a promotion did to monitoring; the rollout's audit log keeps it as evidence."""

    carried_configs: tuple[int, ...]  # new config ids on the promoted version
    kept_configs: tuple[str, ...]  # names the promoted version already had (its own settings win)
    reference: str  # what the promoted version's reference is, in words
    resolved_alerts: tuple[int, ...]  # the retired version's alerts this promotion resolved

    def evidence(self) -> dict[str, object]:
        return {
            "carried_configs": list(self.carried_configs),
            "kept_configs": list(self.kept_configs),
            "reference": self.reference,
            "resolved_alerts": list(self.resolved_alerts),
        }


def _carry_configs(session: Session, retired_id: int, promoted_id: int) -> tuple[list[int], list[str]]:
    own = set(session.scalars(select(DetectorConfig.name).where(DetectorConfig.model_version_id == promoted_id)))
    carried, kept = [], []
    for config in configs.list_configs(session, retired_id):
        if config.name in own:
            kept.append(config.name)
            continue
        row = DetectorConfig(model_version_id=promoted_id, **{f: getattr(config, f) for f in CARRIED})
        row.params = dict(config.params)
        session.add(row)
        session.flush()
        carried.append(row.id)
    return carried, kept


def _reference(session: Session, promoted_id: int, window_start: datetime, window_end: datetime) -> str:
    pinned = references.get_row(session, promoted_id)
    if pinned is not None:
        return f"kept its own ({pinned.source}, n={pinned.n})"
    try:
        row = references.pin_rollout_window(session, promoted_id, window_start, window_end)
    except Invalid as exc:  # too few rollout predictions: say what to do instead of pinning nothing silently
        return f"none: {exc.why} from its rollout; pin one with set_reference (PUT .../reference)"
    return f"its rollout window (n={row.n}, {window_start.isoformat()} to {window_end.isoformat()})"


def hand_over(
    session: Session,
    outbox: alerts.Outbox,
    *,
    retired_id: int,
    promoted_id: int,
    window_start: datetime,
    window_end: datetime,
    resolved_by: str,
    resolution: str,
    now: datetime,
) -> Handover:
    """Carry ``retired_id``'s detector configs to ``promoted_id``, give it a reference, resolve ``retired_id``'s alerts."""
    carried, kept = _carry_configs(session, retired_id, promoted_id)
    reference = _reference(session, promoted_id, window_start, window_end)
    unresolved = session.scalars(
        select(Alert.id).where(Alert.model_version_id == retired_id, Alert.state != "resolved").order_by(Alert.id)
    ).all()
    for alert_id in unresolved:
        alerts.resolve(session, outbox, alert_id, resolved_by, now, resolution=resolution)
    return Handover(tuple(carried), tuple(kept), reference, tuple(unresolved))
