"""shiftwatch on Ray Serve (``pip install 'shiftwatch[ray]'``): the serving path as a Ray Serve application.

``build_app(settings, model)`` reads the registry once: one deployment per version the model serves now
(production, and an active rollout's candidate), each ``@serve.batch``-ing ONNX Runtime calls with its
replica or autoscaling settings, behind one router deployment holding the built-in ``Gateway``. The
rollout controller stays the brain: the router re-reads its plan (shadow, canary share) every
``gateway_refresh_seconds`` and logs every answered prediction as the built-in gateway does. A version
the rollout starts later is deployed by building and running the application again (``serve-ray``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shiftwatch.db import Database
from shiftwatch.extras import require_extra
from shiftwatch.rollout.loading import artifact_file, wanted_versions
from shiftwatch.settings import Settings

APP_NAME = "shiftwatch"


@dataclass(frozen=True, slots=True)
class Scaling:
    """Replicas of each version deployment: a fixed count, or Ray Serve autoscaling between two bounds."""

    replicas: int = 1
    min_replicas: int | None = None  # both set: autoscaling instead of a fixed count
    max_replicas: int | None = None
    target_ongoing_requests: float = 16.0
    num_cpus: float = 1.0  # per version replica (the router takes none of its own)

    def options(self, max_batch_size: int) -> dict[str, Any]:
        # Ray's default max_ongoing_requests (5) would cap every @serve.batch batch at 5 images.
        options: dict[str, Any] = {
            "max_ongoing_requests": max(2 * max_batch_size, 8), "ray_actor_options": {"num_cpus": self.num_cpus},
        }  # fmt: skip
        if self.min_replicas is not None and self.max_replicas is not None:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


def build_app(settings: Settings, model: str, scaling: Scaling | None = None) -> Any:
    """The Ray Serve application (``serve.run(build_app(...))``) that serves ``model`` as the registry says now."""
    serve = require_extra("ray.serve")
    from shiftwatch.rollout.ray_deployments import RayRouter, VersionReplica

    scaling = scaling or Scaling()
    db = Database.connect(settings.database_url)
    try:
        with db.session() as session:
            _, production, _, candidate = wanted_versions(session, model)
            versions = [
                (row.id, row.version, row.artifact_path, row.artifact_sha256)
                for row in (production, candidate)
                if row is not None and row.artifact_path is not None  # without one it is served elsewhere
            ]
    finally:
        db.dispose()
    replica = serve.deployment(VersionReplica)
    options = scaling.options(settings.gateway_max_batch_size)
    handles = {}
    for version_id, version, path, sha256 in versions:
        artifact = str(artifact_file(settings.data_dir, path))
        wait_s = settings.gateway_max_wait_ms / 1000.0
        bound = replica.options(name=f"{model}-{version}", **options)
        handles[str(version_id)] = bound.bind(
            artifact, sha256, settings.gateway_ort_threads, settings.gateway_max_batch_size, wait_s
        )
    router = serve.deployment(RayRouter).options(name="router", max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0})
    return router.bind(settings.model_dump(mode="json"), handles)


def run(settings: Settings, model: str, scaling: Scaling, *, address: str | None, host: str, port: int) -> None:
    """Connect to (or start) a Ray cluster, deploy the application, and keep it served until interrupted."""
    ray = require_extra("ray")
    serve = require_extra("ray.serve")
    ray.init(address=address)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(settings, model, scaling), name=APP_NAME, route_prefix="/", blocking=True)
