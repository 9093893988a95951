"""The built-in oracle: labels queued samples from known ground truth when no Label Studio runs (the demo).

Every label it writes says ``annotator="oracle"`` and ``source="oracle"``, so nobody mistakes
them for a person's work, and a query can leave them out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.db import utcnow
from shiftwatch.errors import Invalid
from shiftwatch.labeling import alert_accuracy
from shiftwatch.labeling.queue import tasks_of_model
from shiftwatch.labeling.tables import Label, LabelTask


def label_with_oracle(
    session: Session,
    model_name: str,
    oracle: Callable[[str], int],
    annotator: str = "oracle",
    *,
    limit: int | None = None,
    now: datetime | None = None,
) -> int:
    """Label the model's pending and sent tasks (highest priority first) with ``oracle(input_ref)``; returns how many."""
    now = now or utcnow()
    num_classes = len(registry.get_model(session, model_name).class_names)
    stmt = tasks_of_model(model_name).where(LabelTask.state.in_(("pending", "sent")), LabelTask.input_ref.is_not(None))
    stmt = stmt.order_by(LabelTask.priority.desc(), LabelTask.id)
    count, versions = 0, set()
    for task in session.scalars(stmt if limit is None else stmt.limit(limit)):
        value = int(oracle(task.input_ref))  # type: ignore[arg-type]  # the query keeps tasks with an input_ref
        if not 0 <= value < num_classes:
            raise Invalid("oracle", f"returned {value} for {task.input_ref}; {model_name} has {num_classes} classes")
        session.add(
            Label(
                task_id=task.id,
                prediction_id=task.prediction_id,
                model_version_id=task.model_version_id,
                label=value,
                annotator=annotator,
                labeled_at=now,
                source="oracle",
            )
        )
        task.state = "labeled"
        versions.add(task.model_version_id)
        count += 1
    session.flush()
    alert_accuracy.refresh(session, versions, now)  # open alerts on these versions now show measured accuracy
    return count
