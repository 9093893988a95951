"""Loading a registered version for serving: which versions a model serves now; each artifact must hash to its row."""

from __future__ import annotations

import hmac
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.artifacts import sha256_file
from shiftwatch.collector import registry
from shiftwatch.collector.onnx_limits import bound_session
from shiftwatch.collector.tables import Model, ModelVersion
from shiftwatch.errors import Conflict, NotFound
from shiftwatch.retrain.runtime import OnnxClassifier
from shiftwatch.rollout.tables import Rollout


def artifact_file(data_dir: Path, artifact_path: str) -> Path:
    """Registry paths are absolute or relative to ``data_dir``."""
    path = Path(artifact_path)
    return path if path.is_absolute() else data_dir / path


def load_verified(path: Path, expected_sha256: str | None, threads: int = 1) -> OnnxClassifier:
    """Open an artifact only if its bytes hash to what the registry says: a swapped file is refused (409)."""
    if not path.is_file():
        raise NotFound(f"artifact {path} does not exist")
    if expected_sha256 is None:
        raise Conflict(f"artifact {path} has no sha256 in the registry; refusing to serve an unverifiable file")
    actual = sha256_file(path)
    if not hmac.compare_digest(actual, expected_sha256.lower()):
        raise Conflict(f"artifact {path} has sha256 {actual[:12]}..., the registry says {expected_sha256[:12]}...")
    bound_session(path, actual)  # registered before the bounds, or written by hand: probed once, in a child
    return OnnxClassifier(path, "cpu", threads=threads)


def wanted_versions(
    session: Session, model_name: str
) -> tuple[Model, ModelVersion, Rollout | None, ModelVersion | None]:
    """The model, its production version, its active (shadow or canary) rollout and that rollout's candidate."""
    model = registry.get_model(session, model_name)
    production = session.scalar(
        select(ModelVersion)
        .where(ModelVersion.model_id == model.id, ModelVersion.state == "production")
        .order_by(ModelVersion.id.desc())
    )
    if production is None:
        raise NotFound(f"model {model_name!r} has no production version to serve")
    rollout = session.scalar(select(Rollout).where(Rollout.model_id == model.id, Rollout.state.in_(("shadow", "canary"))))
    candidate = session.get(ModelVersion, rollout.candidate_version_id) if rollout else None
    return model, production, rollout, candidate
