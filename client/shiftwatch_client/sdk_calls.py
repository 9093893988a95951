"""The SDK's calls besides ``log()``: register a model and a version, pin a reference, add, switch and run detectors,
read alerts, send labels.

Mixed into ``Client`` so a script needs one object and one token for the whole "monitor my own
model" loop (docs/own-model-monitoring.md), and no second HTTP library. Each call is one request
through the client's transport and returns the server's JSON answer; a refusal raises
``ApiError`` with the server's reason. Numpy and the standard library only, like the rest of the SDK.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote, urlencode

import numpy as np

from shiftwatch_client.transport import Transport
from shiftwatch_client.version import __version__, mismatch


def _version_path(model: str, version: str) -> str:
    return f"/v1/models/{quote(model, safe='')}/versions/{quote(version, safe='')}"


def _aware(name: str, value: datetime) -> str:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.isoformat()


def _npy_part(boundary: str, field: str, array: np.ndarray | Sequence[Any]) -> bytes:
    values = np.asarray(array)
    if values.dtype.kind not in "fiub" or values.size == 0:
        raise ValueError(f"{field} must be a non-empty numeric array, got dtype {values.dtype} shape {values.shape}")
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{field}.npy\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode() + buffer.getvalue() + b"\r\n"


class IncompatibleServer(Exception):
    """The server speaks another API version than this client; the message names both and the fix."""


class ServerCalls:
    """What ``Client`` can ask of the server besides ingest: registry, reference, detectors, alerts, labels."""

    _transport: Transport
    # What the client has seen of the server's models: class counts by model, embedding sizes by
    # (model, version). ``log()`` checks rows against them, so a row the server would refuse for
    # its class or its vector length fails in the caller's hands.
    _num_classes: dict[str, int]
    _embedding_dims: dict[tuple[str, str], int]

    def _seen_model(self, answer: Any) -> None:
        if isinstance(answer, dict) and isinstance(answer.get("class_names"), list):
            self._num_classes[str(answer.get("name"))] = len(answer["class_names"])

    def _seen_version(self, model: str, answer: Any) -> None:
        if isinstance(answer, dict) and isinstance(answer.get("embedding_dim"), int):
            self._embedding_dims[(model, str(answer.get("version")))] = answer["embedding_dim"]

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        return self._transport.call(method, path, body, None if body is None else "application/json")

    def check_server(self) -> str:
        """The server's version, after checking this client can talk to it (``IncompatibleServer`` if not).

        Ingest checks the same rule on every batch (the server refuses another API version by name);
        calling this at start-up makes a serving image fail fast instead of filling ``rejected-*`` files.
        """
        answer = self._call("GET", "/health")
        server_version = str(answer.get("version", "")) if isinstance(answer, dict) else ""
        why = mismatch(__version__, server_version) if server_version else "the server did not say its version"
        if why:
            raise IncompatibleServer(why)
        return server_version

    def register_model(self, name: str, class_names: Sequence[str], description: str = "") -> dict[str, Any]:
        """Register a model by its class names (index i = predicted_class i); again with the same names is a no-op."""
        body = {"name": name, "class_names": [str(c) for c in class_names], "description": description}
        answer = self._call("POST", "/v1/models", body)
        self._seen_model(answer)
        return answer

    def register_version(
        self,
        model: str,
        version: str,
        *,
        embedding_dim: int,
        artifact_path: str | None = None,
        artifact_sha256: str | None = None,
        input_spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Register a version of ``model`` whose embeddings have ``embedding_dim`` values, as a candidate.

        Production is reached through a rollout and a person's approval; a model's very first
        version is named production with ``bootstrap_version``. An ONNX artifact is only needed
        for the gateway (upload it with ``POST /v1/artifacts``).
        """
        body = {
            "version": version, "embedding_dim": embedding_dim, "artifact_path": artifact_path,
            "artifact_sha256": artifact_sha256, "input_spec": input_spec or {},
        }  # fmt: skip
        answer = self._call("POST", f"/v1/models/{quote(model, safe='')}/versions", body)
        self._seen_version(model, answer)
        return answer

    def bootstrap_version(self, model: str, version: str, *, reason: str = "") -> dict[str, Any]:
        """Make ``version`` the first production version of a model that never had one (token scope
        ``approve``; audited). The detectors watch production traffic from then on."""
        path = f"/v1/models/{quote(model, safe='')}/versions/{quote(version, safe='')}/bootstrap"
        return self._call("POST", path, {"reason": reason})

    def set_reference(
        self,
        model: str,
        version: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        probabilities: np.ndarray | Sequence[Sequence[float]] | None = None,
        embeddings: np.ndarray | Sequence[Sequence[float]] | None = None,
        labels: np.ndarray | Sequence[int] | None = None,
    ) -> dict[str, Any]:
        """Pin the version's reference window, the "normal" the detectors compare against.

        Either ``start`` and ``end`` (the production predictions logged in [start, end)), or arrays:
        ``probabilities`` (n, k), optionally ``embeddings`` (n, d) and ``labels`` (n,) for the
        accuracy estimators. Returns what was pinned (``n``, ``fingerprint``, ...).
        """
        arrays = {"probabilities": probabilities, "embeddings": embeddings, "labels": labels}
        given = [name for name, value in arrays.items() if value is not None]
        if (start is None) != (end is None):
            raise ValueError("give both start and end, or neither")
        if start is not None and given:
            raise ValueError(f"give a time range or arrays, not both (got start/end and {', '.join(given)})")
        if start is not None and end is not None:
            window = {"start": _aware("start", start), "end": _aware("end", end)}
            return self._call("PUT", _version_path(model, version) + "/reference", window)
        if probabilities is None:
            raise ValueError("give start and end, or at least probabilities (n, k)")
        boundary = uuid.uuid4().hex
        parts = b"".join(_npy_part(boundary, name, arrays[name]) for name in given)  # type: ignore[arg-type]  # given names only arrays that are not None
        body = parts + f"--{boundary}--\r\n".encode()
        path = _version_path(model, version) + "/reference/upload"
        return cast(dict[str, Any], self._transport.call("PUT", path, body, f"multipart/form-data; boundary={boundary}"))

    def get_reference(self, model: str, version: str) -> dict[str, Any]:
        """What the version's reference window holds; ``ApiError`` (404) when none is pinned."""
        return self._call("GET", _version_path(model, version) + "/reference")

    def list_models(self) -> list[dict[str, Any]]:
        answer = self._call("GET", "/v1/models")
        for item in answer if isinstance(answer, list) else []:
            self._seen_model(item)
        return answer

    def list_versions(self, model: str) -> list[dict[str, Any]]:
        answer = self._call("GET", f"/v1/models/{quote(model, safe='')}/versions")
        for item in answer if isinstance(answer, list) else []:
            self._seen_version(model, item)
        return answer

    def add_detector(
        self,
        model: str,
        version: str,
        detector: str = "mmd",
        *,
        window_last_n: int | None = 1000,
        window_minutes: int | None = None,
        schedule_seconds: int = 300,
        alpha: float = 0.05,
        confirm_runs: int = 2,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        min_effect: float | None = None,
    ) -> dict[str, Any]:
        """Watch the version's production traffic with ``detector`` (mmd, lsdd, ks, bbsd, classifier, ...)
        every ``schedule_seconds``, over its last ``window_last_n`` predictions (or ``window_minutes``).

        ``labeled_accuracy`` watches the uniform labels of those predictions instead (concept drift);
        ``min_effect`` is the smallest change worth a page in the detector's unit (accuracy points there).
        """
        body = {
            "model": model, "version": version, "detector": detector, "name": name, "params": params or {},
            "window_last_n": None if window_minutes is not None else window_last_n, "window_minutes": window_minutes,
            "schedule_seconds": schedule_seconds, "alpha": alpha, "confirm_runs": confirm_runs, "min_effect": min_effect,
        }  # fmt: skip
        return self._call("POST", "/v1/detector-configs", body)

    def list_detectors(self, model: str | None = None, version: str | None = None) -> list[dict[str, Any]]:
        """Detector configs (all, or those of ``model:version``), each with its ``id``, method, window and ``enabled``."""
        query = urlencode({k: v for k, v in {"model": model, "version": version}.items() if v})
        return self._call("GET", "/v1/detector-configs" + (f"?{query}" if query else ""))

    def update_detector(self, config_id: int, **changes: Any) -> dict[str, Any]:
        """Change a detector config (``enabled``, ``alpha``, ``window_last_n``, ``schedule_seconds``, ``params``, ...)."""
        return self._call("PATCH", f"/v1/detector-configs/{int(config_id)}", changes)

    def disable_detector(self, config_id: int) -> dict[str, Any]:
        """Stop scheduling a detector (its runs and alerts stay); ``enable_detector`` turns it back on."""
        return self.update_detector(config_id, enabled=False)

    def enable_detector(self, config_id: int) -> dict[str, Any]:
        """Schedule a disabled detector again; its next run refits only if its reference or params changed."""
        return self.update_detector(config_id, enabled=True)

    def check(self, model: str, version: str) -> dict[str, Any]:
        """Run the version's enabled detectors now (``shiftwatch check``): the runs, and the alerts opened or updated."""
        return self._call("POST", _version_path(model, version) + "/check", {})

    def list_alerts(
        self, *, model: str | None = None, version: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Alerts ranked by estimated harm, as `GET /v1/alerts` lists them; state: open, acknowledged, resolved."""
        query = {k: v for k, v in {"model": model, "version": version, "state": state, "limit": limit}.items() if v}
        return self._call("GET", "/v1/alerts?" + urlencode(query))

    def audit_alert(self, alert_id: int, labels: int | None = None, design: str = "auto") -> dict[str, Any]:
        """Queue the labels an alert asks for (``POST /v1/labeling/audit``, scope ``operate``): a draw of its window
        its accuracy is then measured on; ``labels`` defaults to the alert's ask; ``design``: auto, weighted, uniform."""
        return self._call("POST", "/v1/labeling/audit", {"alert_id": alert_id, "labels": labels, "design": design})

    def send_labels(self, model: str, labels: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Labels given outside Label Studio (``POST /v1/labels``, scope ``label``): all stored, or none.

        Each dict: one of ``prediction_id``, ``request_id``, ``input_ref``; ``label`` (class name or
        index); optionally ``annotator``. A bad row refuses them all: ``ApiError`` lists every bad row.
        """
        rows = [{k: (str(v) if k == "prediction_id" else v) for k, v in row.items()} for row in labels]
        return self._call("POST", "/v1/labels", {"model": model, "labels": rows})

    def retire_labels(
        self, model: str, before: datetime, *, label_class: str | int | None = None, reason: str = ""
    ) -> dict[str, Any]:
        """A label definition changed: retire ``model``'s labels given before ``before`` (only ``label_class``'s if
        named) -- kept for audit, left out of retraining and of every labeled accuracy (``POST /v1/labels/retire``,
        scope ``operate``). A new label for a retired sample un-retires it. Returns how many were retired."""
        body = {"model": model, "before": _aware("before", before), "class": label_class, "reason": reason}
        return self._call("POST", "/v1/labels/retire", body)
