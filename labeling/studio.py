"""Label Studio through label-studio-sdk 2.x: the few calls shiftwatch makes, and the shapes it exchanges.

One project per model (titled ``shiftwatch: <model>``) with a single-choice image
classification config built from the model's class names, a "By priority" tab, and one
webhook back to shiftwatch. Tasks carry the image link, the prediction id and the priority
in ``data``, and the model's prediction as a pre-annotation.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shiftwatch.errors import Invalid
from shiftwatch.extras import require_extra
from shiftwatch.labeling.stretch import ImageSize
from shiftwatch.labeling.studio_config import FROM_NAME, TO_NAME, labeling_config
from shiftwatch.secret_key import secret_key
from shiftwatch.settings import Settings

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

# The region id of annotations shiftwatch writes itself (labels from the oracle or an import), so their echo
# (webhook, pull) is recognised and never passes for a person's answer.
OUTSIDE_LABEL_REGION = "shiftwatch-label"
WEBHOOK_PATH = "/v1/labeling/webhook"
WEBHOOK_SECRET_HEADER = "X-Shiftwatch-Webhook-Secret"
WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "TASKS_DELETED"]
PRIORITY_TAB = "By priority"
PRIORITY_COLUMN = "tasks:data.priority"
# Columns a person does not need in the task table: long HTML, the second link, bookkeeping, and the
# prediction score (the labeling order below, not the model's confidence, which the task states in words).
HIDDEN_COLUMNS = [
    *(f"tasks:data.{key}" for key in ("why", "headline", "stretched", "prediction_id")),
    *(f"tasks:{key}" for key in (
        "predictions_score", "predictions_results", "predictions_model_versions", "total_predictions",
        "annotations_results", "annotations_ids", "inner_id", "file_upload", "storage_filename", "created_at",
        "updated_at", "updated_by", "avg_lead_time", "draft_exists",
    )),
]
# "Label All Tasks" in Label Studio 1.23 ignores the tab's ordering (its next-task call sends no view):
# sequential sampling serves task ids in order, so a later push's urgent tasks would wait behind older
# ones. Uncertainty sampling serves the lowest prediction score first among the predictions of the
# project's model_version, so every pre-annotation carries that one model_version and, as its score, the
# labeling order (``labeling_order``): highest priority first, across pushes. With several annotators
# Label Studio picks at random among the first few, so two people rarely open the same task.
SAMPLING = "Uncertainty sampling"
PREDICTION_MODEL_VERSION = "shiftwatch"
# Seconds per Label Studio call: a hung server must not hold the push job for long.
TIMEOUT_S = 15.0


def project_title(model_name: str) -> str:
    return f"shiftwatch: {model_name}"


def labeling_order(priority: float, top: float) -> float:
    """The pre-annotation score that makes uncertainty sampling serve ``priority`` (at most ``top``) first."""
    return round(max(0.0, 1.0 - priority / top), 4)


def priority_tab() -> dict[str, Any]:
    """The data-manager tab annotators label in: highest priority first, priority a number (sorts, range-filters)."""
    return {
        "title": PRIORITY_TAB,
        "ordering": [f"-{PRIORITY_COLUMN}"],
        "columnsDisplayType": {PRIORITY_COLUMN: "Number"},
        "hiddenColumns": {"explore": HIDDEN_COLUMNS, "labeling": HIDDEN_COLUMNS},
    }


def choice_result(class_name: str, region_id: str | None = None) -> list[dict[str, Any]]:
    """An annotation/prediction ``result`` choosing ``class_name`` (``region_id``: marks who wrote it)."""
    region = {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [class_name]}}
    return [{"id": region_id, **region} if region_id else region]


def written_by_shiftwatch(annotation: dict[str, Any]) -> bool:
    """Whether this annotation is one shiftwatch sent (a label made outside Label Studio), not a person's."""
    return any(region.get("id") == OUTSIDE_LABEL_REGION for region in annotation.get("result") or [])


def chosen_class(result: list[dict[str, Any]], class_names: list[str]) -> int | None:
    """The class index an annotation's ``result`` chose; None when it chose nothing (an empty annotation)."""
    for region in result or []:
        if region.get("from_name") == FROM_NAME and region.get("type") == "choices":
            choices = region.get("value", {}).get("choices", [])
            if choices:
                if choices[0] not in class_names:
                    raise Invalid("annotation.result", f"choice {choices[0]!r} is not a class of this model")
                return class_names.index(choices[0])
    return None


def webhook_secret(settings: Settings) -> str:
    """The shared secret Label Studio sends back in ``X-Shiftwatch-Webhook-Secret``, derived from the secret key."""
    return hmac.new(secret_key(settings).encode(), b"label-studio-webhook", hashlib.sha256).hexdigest()


def webhook_headers(settings: Settings) -> dict[str, str]:
    headers = {WEBHOOK_SECRET_HEADER: webhook_secret(settings)}
    if settings.label_studio_callback_token:
        headers["Authorization"] = f"Bearer {settings.label_studio_callback_token}"
    return headers


class Studio:
    """A Label Studio server, as shiftwatch uses it. Accepts a legacy token or a personal access token."""

    def __init__(self, url: str, token: str, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        sdk = require_extra("label_studio_sdk")  # the [labelstudio] extra
        self.client: LabelStudio = sdk.LabelStudio(base_url=self.url, api_key=token, timeout=timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> Studio:
        if not settings.label_studio_url:
            raise Invalid("label_studio_url", "Label Studio is not configured: set SHIFTWATCH_LABEL_STUDIO_URL")
        if not settings.label_studio_token:
            raise Invalid("label_studio_token", "set SHIFTWATCH_LABEL_STUDIO_TOKEN (legacy or personal access token)")
        return cls(settings.label_studio_url, settings.label_studio_token)

    def _project(self, model_name: str) -> Any | None:
        title = project_title(model_name)
        for project in self.client.projects.list(title=title, page_size=100):  # type: ignore[var-annotated]  # the SDK's pager is untyped
            if project.title == title:  # the filter matches substrings: "digits" would find "digits-2"
                return project
        return None

    def find_project(self, model_name: str) -> int | None:
        project = self._project(model_name)
        return None if project is None else int(project.id)

    def ensure_project(
        self, model_name: str, class_names: list[str], image_size: ImageSize | None = None
    ) -> tuple[int, bool]:
        """The model's project id, created (with its config, sampling and priority tab) on first use, and
        whether an existing project's view was replaced.

        An existing project's labeling view and sampling are brought up to date when ``image_size``
        is known (projects made by an older shiftwatch get the current view; their annotations still fit;
        the caller refreshes the data of its open tasks, which the new view reads).
        """
        config = labeling_config(class_names, image_size)
        found = self._project(model_name)
        if found is not None:
            current = (found.label_config, found.sampling, found.model_version)
            if image_size is not None and current != (config, SAMPLING, PREDICTION_MODEL_VERSION):
                # model_version only once a prediction of it exists (Label Studio refuses it before): refresh_task
                self.client.projects.update(found.id, label_config=config, sampling=SAMPLING)
                return int(found.id), True
            return int(found.id), False
        project = self.client.projects.create(
            title=project_title(model_name),
            label_config=config,
            description=f"Samples of {model_name} that shiftwatch selected for labeling. 'Label All Tasks' serves "
            f"the highest priority first; the '{PRIORITY_TAB}' tab lists them in that order.",
            sampling=SAMPLING,
            model_version=PREDICTION_MODEL_VERSION,
            show_skip_button=True,
        )
        self.client.views.create(project=project.id, data=priority_tab())
        return int(project.id), False  # type: ignore[arg-type]  # a created project has an id

    def refresh_task(self, task_id: int, payload: dict[str, Any]) -> None:
        """Replace a task's data with ``payload``'s and add its pre-annotation (the labeling order); annotations stay."""
        self.client.tasks.update(str(task_id), data=payload["data"])
        for prediction in payload["predictions"]:
            self.client.predictions.create(task=task_id, **prediction)

    def use_prediction_version(self, project_id: int) -> None:
        """Make the project's sampling read shiftwatch's pre-annotations (once one exists there)."""
        self.client.projects.update(project_id, model_version=PREDICTION_MODEL_VERSION)

    def create_annotation(self, task_id: int, result: list[dict[str, Any]]) -> int:
        """An annotation on ``task_id`` (a label made outside Label Studio); returns its id."""
        return int(self.client.annotations.create(task_id, result=result).id)

    def ensure_webhook(self, project_id: int, url: str, headers: dict[str, str]) -> int:
        """One webhook per project pointing at ``url``; its headers (the secret) are kept current."""
        for hook in self.client.webhooks.list(project=str(project_id)):
            if hook.url == url and hook.project == project_id:
                if hook.headers != headers or set(hook.actions or []) != set(WEBHOOK_ACTIONS):
                    self.client.webhooks.update(hook.id, url=url, headers=headers, actions=WEBHOOK_ACTIONS)
                return int(hook.id)
        hook = self.client.webhooks.create(
            url=url, project=project_id, send_payload=True, send_for_all_actions=False,
            actions=WEBHOOK_ACTIONS, headers=headers,
        )
        return int(hook.id)

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        """Create tasks (with pre-annotations) in order; returns their Label Studio ids in the same order."""
        response = self.client.projects.import_tasks(project_id, request=tasks, return_task_ids=True)  # type: ignore[arg-type]  # the SDK takes plain dicts
        ids = list(response.task_ids or [])  # type: ignore[attr-defined]  # present with return_task_ids, not in the SDK's model
        if len(ids) != len(tasks):
            raise RuntimeError(f"Label Studio created {len(ids)} of {len(tasks)} tasks")
        return ids

    def tasks(self, project_id: int, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every task of the project with its annotations, as plain JSON (the webhook's shape)."""
        for task in self.client.tasks.list(project=project_id, fields="all", page_size=page_size):  # type: ignore[var-annotated]  # the SDK's pager is untyped
            yield task.model_dump(mode="json")
