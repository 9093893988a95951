"""Labels given outside Label Studio (a spreadsheet, another tool, a script): checked whole, then stored whole.

Each row names one prediction by ``prediction_id``, ``request_id`` or ``input_ref`` and gives its
class by name or index. A row lands on the prediction's queued task when it has one (so a label
of an audit-slice task keeps its ``random`` reason and counts for unbiased accuracy), and on a
new task with reason ``imported`` otherwise. Any bad row refuses the whole import, each bad row
listed with its reason: a half-imported file would leave a person guessing which rows to resend.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.tables import ModelVersion, Prediction
from shiftwatch.db import utcnow
from shiftwatch.errors import Invalid
from shiftwatch.labeling import alert_accuracy
from shiftwatch.labeling.policy import candidate_from_row
from shiftwatch.labeling.queue import IN_CHUNK, insert_candidates
from shiftwatch.labeling.tables import UNIFORM_REASONS, Label, LabelTask

KEYS = ("prediction_id", "request_id", "input_ref")
FIELDS = (*KEYS, "label", "annotator")
ANNOTATOR_MAX = 320  # labels.annotator's width
# Problems spelled out in the message (all of them are in ``details``): a screenful, not a 10,000-line wall.
MESSAGE_ROWS = 50


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One label as given: ``where`` names it for messages ("line 4" of a file, "labels[3]" of a request)."""

    where: str
    prediction_id: str | None = None
    request_id: str | None = None
    input_ref: str | None = None
    label: str | int | None = None
    annotator: str | None = None

    @classmethod
    def of(cls, where: str, values: dict[str, Any]) -> LabelRow:
        """From a parsed record; empty strings count as absent (a CSV's empty cells)."""
        text = {k: str(v).strip() for k, v in values.items() if k in FIELDS and v is not None and str(v).strip() != ""}
        label = values.get("label")
        return cls(where, text.get("prediction_id"), text.get("request_id"), text.get("input_ref"),
                   label if isinstance(label, int) and not isinstance(label, bool) else text.get("label"), text.get("annotator"))


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one row was refused."""

    where: str
    field: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}, {self.field}: {self.why}"


class InvalidRows(Invalid):
    """Some rows are bad: none were stored. ``problems`` lists every bad row (HTTP 422, CLI exit 2)."""

    def __init__(self, problems: list[RowProblem], total: int) -> None:
        shown = "\n".join(f"  {p}" for p in problems[:MESSAGE_ROWS])
        more = f"\n  ... and {len(problems) - MESSAGE_ROWS} more" if len(problems) > MESSAGE_ROWS else ""
        super().__init__("labels", f"{len({p.where for p in problems})} of {total} rows refused, nothing imported:\n{shown}{more}",
                         details=[asdict(p) for p in problems])
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ImportResult:
    model: str
    rows: int
    labeled: int  # tasks that had no label before
    updated: int  # tasks whose label changed
    unchanged: int  # tasks that already had this label from this annotator
    new_tasks: int  # predictions nobody had queued: a task with reason "imported" was made for each
    audit: int  # labels on the uniformly random audit slice (they count for unbiased accuracy)


@dataclass(frozen=True, slots=True)
class _Target:
    """What a good row labels: the prediction's existing tasks, or the prediction to make a task for."""

    tasks: tuple[LabelTask, ...] = ()
    prediction: Prediction | None = None

    def identities(self) -> set[Any]:
        return {t.id for t in self.tasks} | ({self.prediction.id} if self.prediction is not None else set())


def class_index(value: str | int, class_names: list[str]) -> int | None:
    """A class name is that class; an integer (or digits that are not a name) is an index. None if neither fits."""
    if isinstance(value, str) and value in class_names:
        return class_names.index(value)
    text = str(value)
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(class_names):
        return int(text)
    return None


def import_labels(
    session: Session, model_name: str, rows: Sequence[LabelRow], *, annotator: str, now: datetime | None = None
) -> ImportResult:
    """Store every row's label, or none: a bad row raises :class:`InvalidRows` naming each problem."""
    now = now or utcnow()
    model = registry.get_model(session, model_name)
    class_names = list(model.class_names)
    version_ids = list(session.scalars(select(ModelVersion.id).where(ModelVersion.model_id == model.id)))
    problems: list[RowProblem] = []
    values: dict[str, int] = {}
    keyed: list[tuple[LabelRow, str]] = []
    for row in rows:
        problems_before = len(problems)
        given = [k for k in KEYS if getattr(row, k) is not None]
        if len(given) != 1:
            problems.append(RowProblem(row.where, "/".join(KEYS), f"give exactly one of {', '.join(KEYS)} (got {len(given)})"))
        elif given[0] == "prediction_id" and _uuid(row.prediction_id) is None:
            problems.append(RowProblem(row.where, "prediction_id", f"{row.prediction_id!r} is not a UUID"))
        if row.label is None:
            problems.append(RowProblem(row.where, "label", "missing"))
        elif (value := class_index(row.label, class_names)) is None:
            problems.append(RowProblem(row.where, "label", f"{row.label!r} is not one of {model_name}'s classes "
                                       f"({_listing(class_names)}) nor an index 0..{len(class_names) - 1}"))
        else:
            values[row.where] = value
        if row.annotator is not None and len(row.annotator) > ANNOTATOR_MAX:
            problems.append(RowProblem(row.where, "annotator", f"longer than {ANNOTATOR_MAX} characters"))
        if len(problems) == problems_before:
            keyed.append((row, given[0]))
    targets = _resolve(session, version_ids, keyed)
    claimed: dict[Any, str] = {}
    for row, key in keyed:
        target = targets.get(row.where)
        if target is None:
            problems.append(RowProblem(row.where, key, f"no prediction of {model_name} has {key} {getattr(row, key)!r}"))
            continue
        earlier = next((claimed[k] for k in target.identities() if k in claimed), None)
        if earlier is not None:
            problems.append(RowProblem(row.where, key, f"duplicate: labels the same prediction as {earlier}"))
            continue
        claimed.update(dict.fromkeys(target.identities(), row.where))
    if problems:
        position = {row.where: i for i, row in enumerate(rows)}
        raise InvalidRows(sorted(problems, key=lambda p: position[p.where]), len(rows))
    result = _store(session, model_name, [(row, targets[row.where], values[row.where]) for row, _ in keyed], annotator, now)
    alert_accuracy.refresh(session, version_ids, now)  # open alerts show the accuracy these labels measure, as sync does
    return result


def _uuid(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        return None


def _listing(names: list[str], most: int = 12) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", ... {len(names) - most} more" if len(names) > most else "")


def _chunks(values: list[Any]) -> list[list[Any]]:
    return [values[start : start + IN_CHUNK] for start in range(0, len(values), IN_CHUNK)]


def _resolve(session: Session, version_ids: list[int], keyed: list[tuple[LabelRow, str]]) -> dict[str, _Target]:
    """Each row's target by its key: queued tasks first (they outlive their predictions), then predictions."""
    by_pid = {row.where: _uuid(row.prediction_id) for row, key in keyed if key == "prediction_id"}
    by_ref = {row.where: row.input_ref for row, key in keyed if key == "input_ref"}
    by_rid = {row.where: row.request_id for row, key in keyed if key == "request_id"}
    in_model = LabelTask.model_version_id.in_(version_ids)
    tasks_by_pid = {t.prediction_id: t for chunk in _chunks(list(set(by_pid.values())))
                    for t in session.scalars(select(LabelTask).where(in_model, LabelTask.prediction_id.in_(chunk)))}
    tasks_by_ref: dict[str, list[LabelTask]] = {}
    for chunk in _chunks(list(set(by_ref.values()))):
        for task in session.scalars(select(LabelTask).where(in_model, LabelTask.input_ref.in_(chunk))):
            tasks_by_ref.setdefault(task.input_ref or "", []).append(task)
    predictions = _predictions(session, version_ids, "id", [p for p in set(by_pid.values()) if p not in tasks_by_pid])
    predictions += _predictions(session, version_ids, "input_ref", [r for r in set(by_ref.values()) if r not in tasks_by_ref])
    by_request = _predictions(session, version_ids, "request_id", list(set(by_rid.values())))
    tasks_by_prediction = {t.prediction_id: t for chunk in _chunks([p.id for p in by_request])
                           for t in session.scalars(select(LabelTask).where(LabelTask.prediction_id.in_(chunk)))}
    by_id = {p.id: p for p in predictions}
    of_ref, of_request = _grouped(predictions, "input_ref"), _grouped(by_request, "request_id")
    targets: dict[str, _Target] = {}
    for where, pid in by_pid.items():
        if pid in tasks_by_pid:
            targets[where] = _Target(tasks=(tasks_by_pid[pid],))
        elif pid in by_id:
            targets[where] = _Target(prediction=by_id[pid])
    for where, ref in by_ref.items():
        if ref in tasks_by_ref:
            targets[where] = _Target(tasks=tuple(tasks_by_ref[ref]))
        elif ref in of_ref:
            targets[where] = _Target(prediction=_preferred(of_ref[ref]))
    for where, rid in by_rid.items():
        found = of_request.get(rid or "", [])
        queued = tuple(tasks_by_prediction[p.id] for p in found if p.id in tasks_by_prediction)
        if queued or found:
            targets[where] = _Target(tasks=queued) if queued else _Target(prediction=_preferred(found))
    return targets


def _predictions(session: Session, version_ids: list[int], column: str, values: list[Any]) -> list[Prediction]:
    where = getattr(Prediction, column)
    return [p for chunk in _chunks(values)
            for p in session.scalars(select(Prediction).where(Prediction.model_version_id.in_(version_ids), where.in_(chunk)))]


def _grouped(predictions: list[Prediction], column: str) -> dict[str, list[Prediction]]:
    groups: dict[str, list[Prediction]] = {}
    for prediction in predictions:
        groups.setdefault(getattr(prediction, column) or "", []).append(prediction)
    return groups


def _preferred(found: list[Prediction]) -> Prediction:
    """Of several predictions of one input or request (a shadow pair, a re-sent image): production's, newest first."""
    return max(found, key=lambda p: (p.route == "production", p.ts, str(p.id)))


def _store(
    session: Session, model_name: str, rows: list[tuple[LabelRow, _Target, int]], annotator: str, now: datetime
) -> ImportResult:
    fresh = [target.prediction for _, target, _ in rows if target.prediction is not None]
    new_tasks = insert_candidates(session, [candidate_from_row(p, "imported", 0.0, {}) for p in fresh], now)
    made = {t.prediction_id: t for chunk in _chunks([p.id for p in fresh])
            for t in session.scalars(select(LabelTask).where(LabelTask.prediction_id.in_(chunk)))}
    work = [(task, value, row.annotator or annotator) for row, target, value in rows
            for task in (target.tasks if target.prediction is None else (made[target.prediction.id],))]
    labels = {label.task_id: label for chunk in _chunks([task.id for task, _, _ in work])
              for label in session.scalars(select(Label).where(Label.task_id.in_(chunk)))}
    counts = {"labeled": 0, "updated": 0, "unchanged": 0, "audit": 0}
    for task, value, who in work:
        counts[_put_label(session, task, labels.get(task.id), value, who, now)] += 1
        counts["audit"] += task.reason in UNIFORM_REASONS
    session.flush()
    return ImportResult(model=model_name, rows=len(rows), new_tasks=new_tasks, **counts)


def _put_label(session: Session, task: LabelTask, label: Label | None, value: int, annotator: str, now: datetime) -> str:
    """Give ``task`` this label (a newer label overwrites, as an updated annotation does); which count it adds to."""
    task.state = "labeled"
    if label is None:
        session.add(Label(task_id=task.id, prediction_id=task.prediction_id, model_version_id=task.model_version_id,
                          label=value, annotator=annotator, labeled_at=now, source="import"))
        return "labeled"
    if (label.label, label.annotator) == (value, annotator) and label.retired_at is None:
        return "unchanged"
    label.label, label.annotator, label.labeled_at, label.source = value, annotator, now, "import"
    label.studio_annotation_id = None
    label.retired_at = label.retired_reason = None  # given again: under the definition in force now
    return "updated"
