"""Checks an uploaded model artifact must pass before it is registered: size, sha256, ONNX validity.

Only ONNX is accepted as a model format: it is a protobuf graph, never executed as code
on load, unlike pickle (``torch.load`` of a full module, joblib). Artifacts must be
self-contained: tensors stored as external data files could point anywhere on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import stat
from dataclasses import dataclass
from pathlib import Path

from shiftwatch.errors import Invalid, TooLarge

# Reading in 1 MiB pieces: a 500 MB artifact is hashed without holding it in memory.
CHUNK_BYTES = 1 << 20
# onnx.load refuses protobufs over 2 GiB anyway; models we deploy at the edge are far smaller.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArtifactCheck:
    """What was verified: the file's sha256 and size, and the graph's opset and I/O names."""

    sha256: str
    size_bytes: int
    opset: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_onnx_artifact(
    path: Path | str, expected_sha256: str | None, max_bytes: int = DEFAULT_MAX_BYTES
) -> ArtifactCheck:
    """Refuse (``TooLarge`` / ``Invalid("artifact", why)``) anything that is not a self-contained ONNX model.

    ``expected_sha256`` is what the uploader claims; None skips that comparison (for artifacts
    this process wrote itself) but the hash is still computed and returned for the record.
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    from shiftwatch.collector.onnx_limits import bound_session

    path = Path(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise Invalid("artifact", f"{path} does not exist") from None
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a directory we may not enter
        raise Invalid("artifact", f"cannot be read ({exc})") from None
    if not stat.S_ISREG(info.st_mode):  # no symlinks, devices or FIFOs: only the file that was uploaded
        raise Invalid("artifact", f"{path} is not a regular file")
    if info.st_size > max_bytes:
        raise TooLarge(f"artifact: {info.st_size} bytes, over the limit of {max_bytes}")
    if info.st_size == 0:
        raise Invalid("artifact", "is empty")
    digest = sha256_file(path)
    if expected_sha256 is not None:
        if len(expected_sha256) != 64 or not all(c in "0123456789abcdef" for c in expected_sha256.lower()):
            raise Invalid("artifact_sha256", "must be 64 hex characters")
        if not hmac.compare_digest(digest, expected_sha256.lower()):
            raise Invalid("artifact_sha256", f"does not match the file (file has {digest})")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for garbage input
        raise Invalid("artifact", f"not an ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
    if any(uses_external_data(t) for t in _initializers(model)):
        raise Invalid("artifact", "stores tensors in external data files; upload a self-contained model")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - ValidationError and shape-inference errors alike
        raise Invalid("artifact", f"fails the ONNX checker: {str(exc).splitlines()[0][:300]}") from None
    bound_session(path, digest, model)  # no constant bombs: sizes inferred, the session built in a capped child
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return ArtifactCheck(
        sha256=digest,
        size_bytes=info.st_size,
        opset=opset,
        inputs=tuple(i.name for i in model.graph.input),
        outputs=tuple(o.name for o in model.graph.output),
    )


def _initializers(model):
    yield from model.graph.initializer
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.t is not None and attribute.HasField("t"):
                yield attribute.t


# Registered artifacts live here, relative to data_dir (retrain's ArtifactStore writes the same layout).
ARTIFACTS_DIR = "artifacts"


def artifact_in_store(data_dir: Path, given: str) -> str:
    """``given`` as a data_dir-relative path, if it lies under ``data_dir/artifacts``; else ``Invalid``.

    Every path outside the store gets the same message, existing or not: the API must not tell
    a caller what exists elsewhere on the server. Symlinks are followed, so one out of the store is outside.
    """
    outside = Invalid(
        "artifact_path",
        f"must name a file under {ARTIFACTS_DIR}/ in the data directory (e.g. {ARTIFACTS_DIR}/<sha256>.onnx); "
        "upload other files with POST /v1/artifacts",
    )
    base = Path(data_dir).resolve()
    root = base / ARTIFACTS_DIR
    try:
        resolved = (base / given).resolve()  # an absolute ``given`` replaces base
    except (OSError, ValueError, RuntimeError):  # NUL bytes, symlink loops
        raise outside from None
    if resolved == root or not resolved.is_relative_to(root):
        raise outside
    return str(resolved.relative_to(base))
