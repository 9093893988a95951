"""The Ray Serve deployments: one per served model version (``@serve.batch`` ONNX Runtime), and the router.

Imported only through ``shiftwatch.rollout.ray_serve`` (which checks the ``[ray]`` extra first): this
module imports ray at the top. The router holds the same ``Gateway`` as the built-in server, with a
runner factory that sends each version's images to its deployment instead of a local batcher: routing
(shadow, canary share, sticky client keys), fallback and logging are the gateway's, unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse

from shiftwatch.collector.bodies import ByteBudget
from shiftwatch.db import Database
from shiftwatch.errors import NotFound, ShiftwatchError, Unavailable
from shiftwatch.rollout.batching import ImageResult, Runner, VersionToRun
from shiftwatch.rollout.gateway import Gateway
from shiftwatch.rollout.loading import load_verified
from shiftwatch.rollout.router import answer_request
from shiftwatch.settings import Settings

log = logging.getLogger(__name__)

# One image's answer from a version replica: probabilities (K,), embedding (D,), the ORT call's size.
ReplicaAnswer = tuple[np.ndarray, np.ndarray, int]
PREDICT_PREFIX, PREDICT_SUFFIX = "/v1/models/", "/predict"


class VersionReplica:
    """One replica of one model version: the sha256-checked ONNX file, images batched by ``@serve.batch``."""

    def __init__(self, artifact: str, sha256: str | None, ort_threads: int, max_batch_size: int, max_wait_s: float) -> None:
        self.classifier = load_verified(Path(artifact), sha256, ort_threads)  # a swapped file fails the deployment
        batched: Any = self.predict  # ray's stubs type the batched method as the per-item call, without its setters
        batched.set_max_batch_size(max_batch_size)
        batched.set_batch_wait_timeout_s(max_wait_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def predict(self, images: list[np.ndarray]) -> list[ReplicaAnswer]:
        """Run the gathered images as one ORT call (in a thread: the replica's event loop keeps batching)."""
        output = await asyncio.to_thread(self.classifier.run, np.stack(images))
        return [(output.probabilities[i], output.embeddings[i], len(images)) for i in range(len(images))]


class DeploymentRunner:
    """A gateway ``Runner`` whose inference is a call to a version's Ray Serve deployment."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle
        self.batch_sizes: Counter[int] = Counter()  # ORT call size -> answers this router got from such calls
        self._pending = 0

    @property
    def backlog(self) -> int:
        return self._pending

    async def submit(self, image: np.ndarray) -> ImageResult:
        self._pending += 1
        try:
            probabilities, embedding, size = await self.handle.predict.remote(image)
        finally:
            self._pending -= 1
        self.batch_sizes[size] += 1
        return ImageResult(probabilities, embedding, size)

    def close(self) -> None:
        """Nothing to stop here: the deployment's replicas belong to the Ray Serve application."""


def deployment_runners(handles: dict[int, DeploymentHandle]) -> Any:
    """The gateway's runner factory: version id -> its deployment, or a refusal naming the redeploy."""

    def runner(target: VersionToRun) -> Runner:
        handle = handles.get(target.version_id)
        if handle is None:
            raise Unavailable(
                f"{target.model}:{target.version} has no Ray Serve deployment in this application; "
                "run `shiftwatch serve-ray` again to deploy the versions the rollout now wants"
            )
        return DeploymentRunner(handle)

    return runner


class RayRouter:
    """The application's ingress: ``POST /v1/models/{name}/predict`` through a ``Gateway`` over the deployments."""

    def __init__(self, settings: dict[str, Any], handles: dict[int, DeploymentHandle]) -> None:
        self.settings = Settings(**settings)
        # Keys of a dict of handles arrive as given: the ids the gateway asks for are ints.
        runners = deployment_runners({int(version_id): handle for version_id, handle in handles.items()})
        self.gateway = Gateway(Database.connect(self.settings.database_url), self.settings, runners=runners)
        self.budget = ByteBudget(self.settings.max_parse_bytes)

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path
        try:
            if request.method != "POST" or not (path.startswith(PREDICT_PREFIX) and path.endswith(PREDICT_SUFFIX)):
                raise NotFound(f"{request.method} {path}: this application answers POST /v1/models/{{name}}/predict")
            name = path[len(PREDICT_PREFIX) : -len(PREDICT_SUFFIX)]
            answer = await answer_request(self.gateway, name, request, self.settings, self.budget)
        except ShiftwatchError as exc:
            return JSONResponse({"detail": exc.message}, status_code=exc.status_code)
        return JSONResponse(answer.body())

    def stats(self, model: str) -> dict[str, Any]:
        """What the router has answered and logged (tests and the bench call it through a handle)."""
        return {
            "batch_sizes": self.gateway.batch_sizes(model),
            "log_written": self.gateway.writer.written,
            "log_failed": self.gateway.writer.failed,
            "shadow_dropped": self.gateway.shadow_dropped,
        }

    async def drain(self) -> bool:
        """Wait for shadow copies, then for the log writer: True once every answered prediction is stored."""
        await self.gateway.drain_shadow()
        return await asyncio.to_thread(self.gateway.writer.flush)

    def __del__(self) -> None:
        gateway = getattr(self, "gateway", None)  # absent when __init__ failed
        if gateway is not None:
            gateway.close()  # a replica shut down by Ray Serve drains its log writer first
