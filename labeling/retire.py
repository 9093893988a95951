"""Retiring labels when a label definition changes: superseded labels are kept for audit, out of training and accuracy.

A team redefines a class (a product renamed, a defect class split, a camera's parts relabeled):
the labels people gave before the change answer the old question. Retraining on them teaches the
old definition back, and the labeled-accuracy detector would keep testing against it. ``retire``
marks them (``retired_at``, ``retired_reason``) instead of deleting them: the audit trail keeps who
said what, and a new label for the same sample (an import, a Label Studio annotation) un-retires
it, which is how a team relabels old samples under the new definition.

Which labels: those of ``model``'s versions *given* before ``before`` (``labeled_at``: the
definition a person applied is the one in force when they labeled), optionally only those that
gave ``label_class`` (the class whose meaning changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion
from shiftwatch.errors import Invalid
from shiftwatch.labeling.label_import import class_index
from shiftwatch.labeling.tables import Label

REASON_MAX = 500


@dataclass(frozen=True, slots=True)
class Retired:
    """What one ``retire`` did: how many labels it marked now, and how many of the model's labels are retired in all."""

    model: str
    before: datetime
    label_class: str | None
    retired: int
    retired_total: int
    active: int  # labels of the model still used for training and accuracy


def parse_before(text: str, field: str = "before") -> datetime:
    """An ISO date or date/time (naive means UTC, as the CLI's other times); ``Invalid`` naming ``before`` otherwise."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Invalid(field, f"{text!r} is not an ISO date or date/time (e.g. 2026-12-07T04:00:00+00:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def retire_labels(
    session: Session, model_name: str, before: datetime, label_class: str | int | None = None, reason: str = "",
    now: datetime | None = None,
) -> Retired:
    """Mark ``model_name``'s labels given before ``before`` (only those of ``label_class`` if given) as retired."""
    now = now or datetime.now(UTC)
    if before.tzinfo is None:
        raise Invalid("before", "must carry a time zone (naive times are ambiguous)")
    try:
        before = before.astimezone(UTC)
    except OverflowError:
        raise Invalid("before", f"{before.isoformat()} is outside the years a UTC time can hold") from None
    if before > now:
        raise Invalid("before", f"{before.isoformat()} is in the future: only labels already given can be retired")
    if len(reason) > REASON_MAX:
        raise Invalid("reason", f"at most {REASON_MAX} characters, got {len(reason)}")
    model = registry.get_model(session, model_name)
    index = None
    if label_class is not None:
        index = class_index(label_class, list(model.class_names))
        if index is None:
            raise Invalid("class", f"{label_class!r} is not a class of {model_name} ({', '.join(model.class_names)})")
    versions = select(ModelVersion.id).where(ModelVersion.model_id == model.id)
    chosen = [Label.model_version_id.in_(versions), Label.labeled_at < before, Label.retired_at.is_(None)]
    if index is not None:
        chosen.append(Label.label == index)
    why = reason or f"label definition changed at {before.isoformat()}"
    marked = session.execute(
        update(Label).where(*chosen).values(retired_at=now, retired_reason=why)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(marked, "rowcount", 0) or 0)  # an UPDATE's result says how many rows it changed
    session.flush()
    counted = select(func.count(Label.id), func.count(Label.retired_at)).where(Label.model_version_id.in_(versions))
    total, retired = session.execute(counted).one()
    return Retired(model=model_name, before=before, label_class=None if index is None else model.class_names[index],
                   retired=count, retired_total=int(retired), active=int(total) - int(retired))
