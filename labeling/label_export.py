"""The open queue as a file a person can label anywhere: ``shiftwatch labeling export``, the twin of ``import``.

One row per open task (pending or sent), highest priority first, keyed by ``prediction_id``, with a
signed link to the image and an empty ``label`` column; fill it in and send the file back with
``labeling import``. The view columns are what ``label_files.VIEW_COLUMNS`` lets the import ignore.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass

from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.labeling.input_links import InputLinks
from shiftwatch.labeling.queue import tasks_of_model
from shiftwatch.labeling.tables import LabelTask


@dataclass(frozen=True, slots=True)
class ExportRow:
    prediction_id: str
    label: str  # empty: the person's to fill in
    image_url: str
    reason: str  # "audit" for the uniformly random slice, as Label Studio shows it
    route: str
    predicted: str  # the model's class, for reference: a label is what the image shows, not a vote on this


def open_task_rows(session: Session, model_name: str, links: InputLinks, *, audit_only: bool = False) -> list[ExportRow]:
    """The model's open tasks as rows; ``audit_only`` keeps the audit slice (what accuracy and canaries count)."""
    class_names = list(registry.get_model(session, model_name).class_names)
    stmt = tasks_of_model(model_name).where(LabelTask.state.in_(("pending", "sent")), LabelTask.input_ref.is_not(None))
    if audit_only:
        stmt = stmt.where(LabelTask.reason == "random")
    return [
        ExportRow(
            prediction_id=str(task.prediction_id),
            label="",
            image_url=links.link(task.input_ref or ""),
            reason="audit" if task.reason == "random" else task.reason,
            route=str((task.evidence or {}).get("route", "")),  # known for audit tasks
            predicted=class_names[task.predicted_class],
        )
        for task in session.scalars(stmt.order_by(LabelTask.priority.desc(), LabelTask.id))
    ]


def as_csv(rows: list[ExportRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(ExportRow.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    return out.getvalue()


def as_jsonl(rows: list[ExportRow]) -> str:
    return "".join(json.dumps(asdict(row)) + "\n" for row in rows)
