"""Content-addressed files under ``data_dir/artifacts``: ONNX models, torch weights and reference sets named by their sha256."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from shiftwatch.artifacts import sha256_file
from shiftwatch.errors import Invalid, NotFound
from shiftwatch.retrain.tables import Artifact

# kind -> file suffix; "reference": a contract model's reference set (.npz), kept so moving the user's file breaks nothing
KINDS = {"onnx": "onnx", "weights": "pt", "reference": "npz"}


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    sha256: str
    kind: str
    path: Path  # absolute
    size_bytes: int


class ArtifactStore:
    """Copy a file in once; the same bytes always land at the same path (writing twice is free)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.root = self.data_dir / "artifacts"

    def relative(self, stored: StoredArtifact) -> str:
        """The path registry rows carry: relative to ``data_dir``, so the data directory can move."""
        return str(stored.path.relative_to(self.data_dir))

    def resolve(self, registry_path: str) -> Path:
        """A registry path (absolute, or relative to ``data_dir``) as a file path: the rollout gateway's rule."""
        path = Path(registry_path)
        return path if path.is_absolute() else self.data_dir / path

    def put(self, source: Path, kind: str) -> StoredArtifact:
        if kind not in KINDS:
            raise Invalid("kind", f"must be one of {', '.join(KINDS)}")
        digest = sha256_file(source)
        target = self.root / f"{digest}.{KINDS[kind]}"
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(f".{os.getpid()}.partial")
            shutil.copyfile(source, partial)
            partial.replace(target)  # atomic: a gateway never loads half a model
        return StoredArtifact(digest, kind, target, target.stat().st_size)

    def path(self, sha256: str, kind: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise Invalid("sha256", "must be 64 lowercase hex digits")
        target = self.root / f"{sha256}.{KINDS[kind]}"
        if not target.is_file():
            raise NotFound(f"artifact {sha256} ({kind}) is not stored under {self.root}")
        return target

    def record(self, session: Session, stored: StoredArtifact) -> None:
        """Add the artifacts row unless it is there already (same bytes, same row)."""
        if session.get(Artifact, stored.sha256) is None:
            session.add(
                Artifact(
                    sha256=stored.sha256,
                    kind=stored.kind,
                    path=self.relative(stored),
                    size_bytes=stored.size_bytes,
                )
            )
            session.flush()
