"""What the labeling page lists: the most urgent open tasks of a model, each with its Label Studio link."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from shiftwatch.labeling.queue import tasks_of_model
from shiftwatch.labeling.tables import LabelTask

# A page a person reads, not an export: the queue's head is what needs attention.
SHOWN_TASKS = 20


@dataclass(frozen=True, slots=True)
class OpenTask:
    id: int
    reason: str
    priority: float
    predicted_class: int
    confidence: float
    state: str
    studio_task_id: int | None
    studio_link: str | None


def studio_link(label_studio_url: str | None, task: LabelTask) -> str | None:
    """Label Studio's own URL of the task (its data manager, opened on that task)."""
    if not label_studio_url or task.studio_project_id is None or task.studio_task_id is None:
        return None
    base = label_studio_url.rstrip("/")
    return f"{base}/projects/{task.studio_project_id}/data?task={task.studio_task_id}"


def open_tasks(session: Session, label_studio_url: str | None, model_name: str) -> list[OpenTask]:
    stmt = (
        tasks_of_model(model_name)
        .where(LabelTask.state.in_(("pending", "sent")))
        .order_by(LabelTask.priority.desc(), LabelTask.id)
        .limit(SHOWN_TASKS)
    )
    return [
        OpenTask(t.id, t.reason, t.priority, t.predicted_class, t.confidence, t.state, t.studio_task_id,
                 studio_link(label_studio_url, t))
        for t in session.scalars(stmt)
    ]
