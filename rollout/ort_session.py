"""A loaded ONNX classifier: one ONNX Runtime session whose graph outputs ``logits`` and ``embedding``.

Interim: replaced by shiftwatch.retrain.runtime once that lands on main.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort

from shiftwatch.errors import Conflict, NotFound


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OrtClassifier:
    """Runs a batch of images through the graph; returns (logits, embeddings) as float32 arrays."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, embedding = self.session.run(["logits", "embedding"], {self.input_name: images})
        return np.asarray(logits, dtype=np.float32), np.asarray(embedding, dtype=np.float32)


def load_verified(path: Path, expected_sha256: str | None, threads: int = 1) -> OrtClassifier:
    """Open an artifact only if its bytes hash to what the registry row says: a swapped file is refused."""
    if not path.is_file():
        raise NotFound(f"artifact {path} does not exist")
    if expected_sha256 is None:
        raise Conflict(f"artifact {path} has no sha256 in the registry; refusing to serve an unverifiable file")
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise Conflict(f"artifact {path} has sha256 {actual[:12]}..., the registry says {expected_sha256[:12]}...")
    return OrtClassifier(path, threads)
