"""Moving the queue to Label Studio and labels back: push with retry, webhook events, and the catch-up pull.

Queue state lives in our database, never only in Label Studio: a push first claims its
tasks (a short lease), calls Label Studio outside any transaction, then records either the
task ids (``sent``) or the error with a backoff (still ``pending``). Labels are keyed by the
prediction id carried in each task's data, so a webhook, a pull, or a task created twice
all land on the same row.

A task deleted in Label Studio is marked ``skipped`` and its label removed: someone chose
to drop it, and putting it back in the queue would push it again on every run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.inputs import InputStore
from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.db import Database, utcnow
from shiftwatch.errors import Invalid, Unavailable
from shiftwatch.labeling import alert_accuracy
from shiftwatch.labeling.input_links import InputLinks
from shiftwatch.labeling.outside_labels import send_outside_labels
from shiftwatch.labeling.queue import tasks_of_model
from shiftwatch.labeling.studio import WEBHOOK_PATH, Studio, chosen_class, webhook_headers, written_by_shiftwatch
from shiftwatch.labeling.tables import OUTSIDE_STUDIO, Label, LabelTask
from shiftwatch.labeling.task_view import TaskContext, first_image_size, task_context, task_payload
from shiftwatch.settings import Settings

# A claimed batch is invisible to other pushers for this long; far above one import call.
CLAIM_LEASE_S = 300
# Tasks per import call: keeps each request small and a failure's blast radius one batch.
PUSH_BATCH = 200
# Backoff between push attempts: 30 s doubling up to one hour, so a long outage costs ~1 try an hour.
BACKOFF_BASE_S = 30
# Label Studio ids are stored in INTEGER columns: a larger one in a webhook is refused (422), not a database error.
MAX_STUDIO_ID = 2**31 - 1
BACKOFF_MAX_S = 3600


@dataclass(frozen=True, slots=True)
class PushResult:
    model: str
    sent: int
    failed: int
    pending: int
    project_id: int | None
    error: str | None
    closed: int = 0  # labels made outside Label Studio sent there as annotations (their tasks show as done)


@dataclass(frozen=True, slots=True)
class SyncCounts:
    """What a pull or a webhook changed."""

    labeled: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    deleted: int = 0
    unknown: int = 0

    def __add__(self, other: SyncCounts) -> SyncCounts:
        return SyncCounts(*(a + b for a, b in zip(_astuple(self), _astuple(other), strict=True)))


def _astuple(counts: SyncCounts) -> tuple[int, ...]:
    return (counts.labeled, counts.updated, counts.unchanged, counts.skipped, counts.deleted, counts.unknown)


def push(
    db: Database,
    settings: Settings,
    model_name: str,
    *,
    studio: Studio | None = None,
    now: datetime | None = None,
    force: bool = False,
    limit: int = 1000,
) -> PushResult:
    """Send the model's due pending tasks to Label Studio, highest priority first, then the labels made
    outside it (the oracle, imports) for tasks already there, as annotations (``outside_labels``).

    A failure leaves them ``pending`` with ``attempts`` + 1, ``last_error`` and a backoff;
    ``force`` ignores the backoff (the CLI's ``push --now``).
    """
    studio = studio or Studio.from_settings(settings)
    now = now or utcnow()
    with db.session() as session:
        context = task_context(session, InputLinks.of(settings), settings.public_url, model_name)
        stmt = tasks_of_model(model_name).where(LabelTask.state == "pending")
        if not force:
            stmt = stmt.where((LabelTask.next_attempt_at.is_(None)) | (LabelTask.next_attempt_at <= now))
        due = list(session.scalars(stmt.order_by(LabelTask.priority.desc(), LabelTask.id).limit(limit)))
        payloads = [task_payload(context, t) for t in due]
        size = first_image_size(InputStore(settings.data_dir), due)
        ids = [t.id for t in due]
        for task in due:  # the claim: another pusher skips these until the lease ends
            task.next_attempt_at = now + timedelta(seconds=CLAIM_LEASE_S)
    sent, closed, project_id, error = 0, 0, None, None
    try:
        if ids:
            project_id, view_replaced = studio.ensure_project(model_name, context.class_names, size)
            if view_replaced:
                refresh_open_tasks(db, studio, context, model_name, project_id)
                studio.use_prediction_version(project_id)
            studio.ensure_webhook(project_id, settings.public_url.rstrip("/") + WEBHOOK_PATH, webhook_headers(settings))
        for start in range(0, len(ids), PUSH_BATCH):
            studio_ids = studio.import_tasks(project_id, payloads[start : start + PUSH_BATCH])  # type: ignore[arg-type]  # set above when ids is not empty
            _mark_sent(db, ids[start : start + PUSH_BATCH], project_id, studio_ids, utcnow())  # type: ignore[arg-type]  # as above
            sent += len(studio_ids)
        closed = send_outside_labels(db, studio, model_name, limit)
    except Exception as exc:  # noqa: BLE001 - any failure (refused, timeout, 5xx, bad token) keeps the rest pending
        error = _one_line(exc)
        _mark_failed(db, ids[sent:], error, now)
    with db.session() as session:
        waiting = tasks_of_model(model_name).where(LabelTask.state == "pending").subquery()
        pending = int(session.scalar(select(func.count()).select_from(waiting)) or 0)
    return PushResult(model_name, sent, len(ids) - sent, pending, project_id, error, closed)


def refresh_open_tasks(db: Database, studio: Studio, context: TaskContext, model_name: str, project_id: int) -> int:
    """Send current data and pre-annotations to the project's open tasks (pushed, not labeled) after its view was
    replaced: the view reads fields an older shiftwatch did not send (the stretched copy, the explanation), and
    the sampling reads the labeling order from the pre-annotation."""
    with db.session() as session:
        stmt = tasks_of_model(model_name).where(LabelTask.state == "sent", LabelTask.studio_project_id == project_id)
        updates = [(t.studio_task_id, task_payload(context, t)) for t in session.scalars(stmt) if t.studio_task_id]
    for task_id, payload in updates:
        studio.refresh_task(task_id, payload)
    return len(updates)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    if getattr(exc, "status_code", None) is not None and hasattr(exc, "body"):  # the SDK's ApiError
        text = f"HTTP {exc.status_code}: {exc.body}"  # type: ignore[attr-defined]  # checked one line up
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no message'}"[:2000]


def _mark_sent(db: Database, ids: list[int], project_id: int, studio_ids: list[int], now: datetime) -> None:
    with db.session() as session:
        for task_id, studio_id in zip(ids, studio_ids, strict=True):
            task = session.get(LabelTask, task_id)
            assert task is not None
            task.state, task.studio_project_id, task.studio_task_id = "sent", project_id, studio_id
            task.sent_at, task.last_error, task.next_attempt_at = now, None, None
            task.attempts += 1


def backoff_s(attempts: int) -> float:
    """Seconds before a task whose push failed ``attempts`` times is tried again."""
    return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(attempts - 1, 0)))


def _mark_failed(db: Database, ids: list[int], error: str, now: datetime) -> None:
    with db.session() as session:
        for task_id in ids:
            task = session.get(LabelTask, task_id)
            assert task is not None
            task.attempts += 1
            task.last_error = error
            task.next_attempt_at = now + timedelta(seconds=backoff_s(task.attempts))


def _parse_time(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _annotator(annotation: dict[str, Any]) -> str:
    """``label-studio:<user id>``: the webhook sends the id only, so the pull records the same."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("id")
    return f"label-studio:{who}"


def _find_task(session: Session, task: dict[str, Any]) -> LabelTask | None:
    prediction_id = (task.get("data") or {}).get("prediction_id")
    if prediction_id:
        try:
            found = session.scalar(select(LabelTask).where(LabelTask.prediction_id == uuid.UUID(str(prediction_id))))
        except ValueError:
            found = None
        if found is not None:
            return found
    if task.get("id") is None:
        return None
    return session.scalar(select(LabelTask).where(LabelTask.studio_task_id == int(task["id"])).limit(1))


def _class_names(session: Session, row: LabelTask) -> list[str]:
    stmt = select(Model.class_names).join(ModelVersion, ModelVersion.model_id == Model.id)
    return list(session.scalar(stmt.where(ModelVersion.id == row.model_version_id)) or [])


def apply_annotation(
    session: Session, row: LabelTask, task: dict[str, Any], annotation: dict[str, Any], source: str
) -> SyncCounts:
    """Store one Label Studio annotation as the row's label (newer wins; a cancelled one skips the sample)."""
    if row.studio_task_id is None and task.get("id") is not None:
        row.studio_task_id, row.studio_project_id = int(task["id"]), task.get("project")
        row.state = "sent" if row.state == "pending" else row.state
    label = session.scalar(select(Label).where(Label.task_id == row.id))
    if label is not None and _is_echo(label, annotation, _class_names(session, row)):
        label.studio_annotation_id = label.studio_annotation_id or annotation.get("id")
        return SyncCounts(unchanged=1)  # our own label, sent as an annotation, coming back
    when = _parse_time(annotation.get("updated_at") or annotation.get("created_at") or utcnow())
    if label is not None and label.labeled_at > when:
        return SyncCounts(unchanged=1)  # an older event arriving late must not undo a newer label
    value = None if annotation.get("was_cancelled") else chosen_class(annotation.get("result") or [], _class_names(session, row))
    if value is None:  # skipped or emptied: the sample is skipped unless another annotation still labels it
        if label is None or label.studio_annotation_id == annotation.get("id"):
            _unlabel(session, row, "skipped")
        return SyncCounts(skipped=1)
    fields = {
        "label": value,
        "annotator": _annotator(annotation),
        "labeled_at": when,
        "source": source,
        "studio_task_id": task.get("id"),
        "studio_annotation_id": annotation.get("id"),
        "retired_at": None,  # a new annotation is given under the definition in force now (labeling retire)
        "retired_reason": None,
    }
    row.state = "labeled"
    if label is None:
        session.add(Label(task_id=row.id, prediction_id=row.prediction_id, model_version_id=row.model_version_id, **fields))
        return SyncCounts(labeled=1)
    if (label.label, label.annotator, label.studio_annotation_id) == (value, fields["annotator"], fields["studio_annotation_id"]) and label.labeled_at == when:
        return SyncCounts(unchanged=1)
    for key, val in fields.items():
        setattr(label, key, val)
    return SyncCounts(updated=1)


def _is_echo(label: Label, annotation: dict[str, Any], class_names: list[str]) -> bool:
    """Whether ``annotation`` is this label of ours (made outside Label Studio) as Label Studio shows it."""
    if label.source not in OUTSIDE_STUDIO or not written_by_shiftwatch(annotation) or annotation.get("was_cancelled"):
        return False
    if label.studio_annotation_id not in (None, annotation.get("id")):
        return False
    return chosen_class(annotation.get("result") or [], class_names) == label.label


def _unlabel(session: Session, row: LabelTask, state: str) -> bool:
    """Drop the row's Label Studio label and move it to ``state``; one given elsewhere (oracle, import) stays: False."""
    label = session.scalar(select(Label).where(Label.task_id == row.id))
    if label is not None and label.source in OUTSIDE_STUDIO:
        return False
    if label is not None:
        session.delete(label)
    row.state = state
    return True


def _task_gone(session: Session, row: LabelTask) -> bool:
    """The row's Label Studio task was deleted: a person's label goes with it (``skipped``, never pushed
    again: True); a label made outside Label Studio stays, the row no longer pointing at the deleted task."""
    label = session.scalar(select(Label).where(Label.task_id == row.id))
    if label is not None and label.source in OUTSIDE_STUDIO:
        row.studio_task_id = label.studio_task_id = label.studio_annotation_id = None
        return False
    return _unlabel(session, row, "skipped")


def apply_task(session: Session, row: LabelTask, task: dict[str, Any], source: str) -> SyncCounts:
    """Bring one row in line with a task as the pull sees it: a person's newest answer wins over ours.

    A task without annotations whose label was made outside Label Studio (not sent there yet)
    keeps it: only a deleted Label Studio annotation returns a labeled row to ``sent``.
    """
    annotations = sorted(task.get("annotations") or [], key=lambda a: _parse_time(a.get("updated_at") or a.get("created_at")))
    answered = [a for a in annotations if not a.get("was_cancelled")]
    people = [a for a in answered if not written_by_shiftwatch(a)]
    if answered:
        return apply_annotation(session, row, task, (people or answered)[-1], source)
    if annotations:
        return apply_annotation(session, row, task, annotations[-1], source)
    if row.state in ("labeled", "skipped") and _unlabel(session, row, "sent"):
        return SyncCounts(updated=1)  # its annotations were deleted: the task waits for a person again
    return SyncCounts(unchanged=1)


def pull(db: Database, studio: Studio, model_name: str) -> SyncCounts:
    """Catch up with Label Studio: every task's current annotation, and the tasks deleted there."""
    try:  # network first, then one short transaction
        project_id = studio.find_project(model_name)
        tasks = [] if project_id is None else list(studio.tasks(project_id))
    except Exception as exc:  # noqa: BLE001 - refused, timeout, 5xx, bad token: all mean "try later"
        raise Unavailable(f"Label Studio at {studio.url}: {_one_line(exc)}", retry_after_s=30) from None
    if project_id is None:
        return SyncCounts()
    counts = SyncCounts()
    with db.session() as session:
        registry.get_model(session, model_name)
        seen: set[int] = set()
        for task in tasks:
            row = _find_task(session, task)
            seen.add(int(task["id"]))
            counts += apply_task(session, row, task, "pull") if row is not None else SyncCounts(unknown=1)
        stmt = tasks_of_model(model_name).where(
            LabelTask.studio_project_id == project_id, LabelTask.state.in_(("sent", "labeled"))
        )
        for row in session.scalars(stmt):
            if row.studio_task_id is not None and row.studio_task_id not in seen and _task_gone(session, row):
                counts += SyncCounts(deleted=1)
        session.flush()
        versions = [v.id for v in registry.list_versions(session, model_name)]
        alert_accuracy.refresh(session, versions, utcnow())  # the alerts' accuracy, from the labels pulled
    return counts


def _object(value: Any, field: str, required: bool = True) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise Invalid(field, f"must be an object, got {type(value).__name__}")
    return value


def _id(value: Any, field: str) -> int:
    """A Label Studio id: a non-negative integer (or its digits) that fits the INTEGER columns holding it."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_STUDIO_ID:
        return value
    raise Invalid(field, f"must be an integer id from 0 to {MAX_STUDIO_ID}")


def _check_task(task: Any, field: str) -> dict[str, Any]:
    task = _object(task, field)
    data = _object(task.get("data"), f"{field}.data", required=False)
    if data.get("prediction_id") is not None and not isinstance(data["prediction_id"], str):
        raise Invalid(f"{field}.data.prediction_id", "must be a string")
    for key in ("id", "project"):
        if task.get(key) is not None:
            _id(task[key], f"{field}.{key}")
    return task


def _check_annotation(annotation: Any) -> dict[str, Any]:
    """The fields of an annotation we read, each of the type we read it as: a bad one is a 422, not a 500."""
    annotation = _object(annotation, "annotation")
    if annotation.get("id") is not None:
        _id(annotation["id"], "annotation.id")
    result = annotation.get("result")
    if result is not None:
        if not isinstance(result, list):
            raise Invalid("annotation.result", "must be a list")
        for i, region in enumerate(result):
            _object(region, f"annotation.result[{i}]")
            value = _object(region.get("value"), f"annotation.result[{i}].value", required=False)
            choices = value.get("choices")
            if choices is not None and not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
                raise Invalid(f"annotation.result[{i}].value.choices", "must be a list of strings")
    for key in ("updated_at", "created_at"):
        if annotation.get(key) is not None:
            try:
                _parse_time(annotation[key])
            except (TypeError, ValueError):
                raise Invalid(f"annotation.{key}", "must be an ISO 8601 time") from None
    return annotation


def _ids(items: Any, field: str) -> list[int]:
    """The ids of a list of objects (``annotations``/``tasks`` of a delete event); entries without one are ignored."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise Invalid(field, "must be a list")
    objects = [_object(item, f"{field}[{i}]") for i, item in enumerate(items)]
    return [_id(item["id"], f"{field}[{i}].id") for i, item in enumerate(objects) if item.get("id") is not None]


def apply_webhook(db: Database, payload: dict[str, Any]) -> SyncCounts:
    """Apply one Label Studio webhook event; events about tasks we did not push are counted, not failed.

    Every field read is checked for its type first: a malformed event is refused with a 422 that
    names the field (issue 27), never a 500 half-way through.
    """
    action = payload.get("action")
    with db.session() as session:
        if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            task, annotation = payload.get("task"), payload.get("annotation")
            if task is None or annotation is None:
                raise Invalid("body", f"{action} needs 'task' and 'annotation' objects")
            task, annotation = _check_task(task, "task"), _check_annotation(annotation)
            row = _find_task(session, task)
            if row is None:
                return SyncCounts(unknown=1)
            counts = apply_annotation(session, row, task, annotation, "webhook")
            session.flush()
            alert_accuracy.refresh(session, [row.model_version_id], utcnow())  # the alert's accuracy, as labels arrive
            return counts
        if action == "ANNOTATIONS_DELETED":
            ids = _ids(payload.get("annotations"), "annotations")
            counts = SyncCounts()
            for label in session.scalars(select(Label).where(Label.studio_annotation_id.in_(ids))):
                row = session.get(LabelTask, label.task_id)
                assert row is not None
                _unlabel(session, row, "sent")
                counts += SyncCounts(updated=1)
            return counts
        if action == "TASKS_DELETED":
            ids = _ids(payload.get("tasks"), "tasks")
            project = _object(payload.get("project"), "project", required=False).get("id")
            stmt = select(LabelTask).where(LabelTask.studio_task_id.in_(ids))
            if project is not None:
                stmt = stmt.where(LabelTask.studio_project_id == _id(project, "project.id"))
            return SyncCounts(deleted=sum(_task_gone(session, row) for row in session.scalars(stmt)))
    return SyncCounts(unknown=1)
