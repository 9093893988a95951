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
from typing import Any
from xml.sax.saxutils import quoteattr

from label_studio_sdk import LabelStudio

from shiftwatch.errors import Invalid
from shiftwatch.secret_key import secret_key
from shiftwatch.settings import Settings

FROM_NAME, TO_NAME = "label", "image"
WEBHOOK_PATH = "/v1/labeling/webhook"
WEBHOOK_SECRET_HEADER = "X-Shiftwatch-Webhook-Secret"
WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "TASKS_DELETED"]
PRIORITY_TAB = "By priority"
# Seconds per Label Studio call: a hung server must not hold the push job for long.
TIMEOUT_S = 15.0


def project_title(model_name: str) -> str:
    return f"shiftwatch: {model_name}"


def labeling_config(class_names: list[str]) -> str:
    """Label Studio XML: the image and one single-choice question whose choices are the class names."""
    choices = "".join(f"<Choice value={quoteattr(name)}/>" for name in class_names)
    return (
        f'<View><Image name="{TO_NAME}" value="$image" zoom="true"/>'
        f'<Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single-radio" showInLine="true">{choices}</Choices>'
        "</View>"
    )


def choice_result(class_name: str) -> list[dict[str, Any]]:
    """An annotation/prediction ``result`` choosing ``class_name``."""
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [class_name]}}]


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
        self.client = LabelStudio(base_url=self.url, api_key=token, timeout=timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> Studio:
        if not settings.label_studio_url:
            raise Invalid("label_studio_url", "Label Studio is not configured: set SHIFTWATCH_LABEL_STUDIO_URL")
        if not settings.label_studio_token:
            raise Invalid("label_studio_token", "set SHIFTWATCH_LABEL_STUDIO_TOKEN (legacy or personal access token)")
        return cls(settings.label_studio_url, settings.label_studio_token)

    def find_project(self, model_name: str) -> int | None:
        title = project_title(model_name)
        for project in self.client.projects.list(title=title, page_size=100):  # type: ignore[var-annotated]  # the SDK's pager is untyped
            if project.title == title:  # the filter matches substrings: "digits" would find "digits-2"
                return int(project.id)
        return None

    def ensure_project(self, model_name: str, class_names: list[str]) -> int:
        """The model's project, created (with its config and priority tab) on first use."""
        found = self.find_project(model_name)
        if found is not None:
            return found
        project = self.client.projects.create(
            title=project_title(model_name),
            label_config=labeling_config(class_names),
            description=f"Samples of {model_name} that shiftwatch selected for labeling (highest priority first).",
        )
        self.client.views.create(
            project=project.id, data={"title": PRIORITY_TAB, "ordering": ["-tasks:data.priority"]}
        )
        return int(project.id)  # type: ignore[arg-type]  # a created project has an id

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
