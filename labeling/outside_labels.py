"""Labels made outside Label Studio (the oracle, an import) closed there too: sent as annotations on their tasks.

A labeling lead expects Label Studio to show the same state as shiftwatch: a task we hold a
label for must not sit open in anyone's "Label All Tasks" stream, where a person would spend
time labeling it again. Deleting the task would also hide the answer from review; so the label
goes to Label Studio as an annotation (marked as ours, ``studio.OUTSIDE_LABEL_REGION``): the
task shows as completed with the answer visible, and a person who corrects it there replaces
it (webhook or pull), as with any annotation. Tasks labeled before they were ever pushed are
simply never pushed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from shiftwatch.collector import registry
from shiftwatch.db import Database
from shiftwatch.labeling.queue import tasks_of_model
from shiftwatch.labeling.studio import OUTSIDE_LABEL_REGION, Studio, choice_result
from shiftwatch.labeling.tables import OUTSIDE_STUDIO, Label, LabelTask

# Annotations created at once: each call also waits for Label Studio's webhook back to us (~0.3 s).
PARALLEL_CALLS = 4


@dataclass(frozen=True, slots=True)
class OutsideLabel:
    label_id: int
    studio_task_id: int
    class_name: str


def unsent_outside_labels(db: Database, model_name: str, limit: int) -> list[OutsideLabel]:
    """Labels made outside Label Studio for tasks that are there, not sent as annotations yet."""
    with db.session() as session:
        class_names = list(registry.get_model(session, model_name).class_names)
        stmt = (
            tasks_of_model(model_name)
            .join(Label, Label.task_id == LabelTask.id)
            .where(LabelTask.studio_task_id.is_not(None), Label.studio_annotation_id.is_(None))
            .where(Label.source.in_(OUTSIDE_STUDIO))
            .with_only_columns(Label.id, LabelTask.studio_task_id, Label.label)
            .order_by(LabelTask.priority.desc(), LabelTask.id)
            .limit(limit)
        )
        return [OutsideLabel(i, t, class_names[c]) for i, t, c in session.execute(stmt).tuples() if t is not None]


def send_outside_labels(db: Database, studio: Studio, model_name: str, limit: int = 1000) -> int:
    """Send each unsent outside label as an annotation on its task; returns how many were sent.

    Label Studio is called outside any transaction, a few calls at once (each also waits for
    Label Studio's webhook back to us); each sent annotation's id is recorded as it comes, so a
    failure part-way leaves the rest for the next push, and the first error is raised after.
    """
    sent, first_error = 0, None
    with ThreadPoolExecutor(max_workers=PARALLEL_CALLS) as pool:
        calls = {
            pool.submit(studio.create_annotation, item.studio_task_id, choice_result(item.class_name, OUTSIDE_LABEL_REGION)): item
            for item in unsent_outside_labels(db, model_name, limit)
        }
        for call in as_completed(calls):
            try:
                annotation_id = call.result()
            except Exception as exc:  # noqa: BLE001 - any failure: the rest still get recorded, then it is raised
                first_error = first_error or exc
                continue
            with db.session() as session:
                label = session.get(Label, calls[call].label_id)
                if label is not None:  # its echo (the webhook) may have recorded the id already: same value
                    label.studio_annotation_id = annotation_id
            sent += 1
    if first_error is not None:
        raise first_error
    return sent
