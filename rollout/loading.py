"""Loading a registered version for serving: the artifact must hash to its registry row, then ORT opens it."""

from __future__ import annotations

import hmac
from pathlib import Path

from shiftwatch.artifacts import sha256_file
from shiftwatch.collector.onnx_limits import bound_session
from shiftwatch.errors import Conflict, NotFound
from shiftwatch.retrain.runtime import OnnxClassifier


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
