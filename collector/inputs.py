"""Content-addressed store of input images, so labeling and retraining can see what the model saw.

An input reference looks like ``inputs/<sha256>.png``. References are checked against that
exact shape before any file is touched: no path from a client ever reaches the filesystem.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from shiftwatch.errors import Invalid, NotFound

REF_PATTERN = re.compile(r"^inputs/([0-9a-f]{64})\.(png|jpg|npy)$")
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "npy": "application/octet-stream"}


class InputStore:
    """Files under ``root/inputs``, named by the sha256 of their bytes (writing twice is free).

    Files no row refers to are deleted by the retention job (``collector.input_retention``).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes, extension: str = "png") -> str:
        if extension not in MEDIA_TYPES:
            raise Invalid("extension", f"must be one of {', '.join(MEDIA_TYPES)}")
        digest = hashlib.sha256(data).hexdigest()
        ref = f"inputs/{digest}.{extension}"
        path = self.root / ref
        try:
            os.utime(path)  # stored already: refresh its age, so the orphan sweep leaves it to the row about to use it
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(data)
            partial.replace(path)  # atomic: a reader never sees half a file
        return ref

    def path(self, ref: str) -> Path:
        if REF_PATTERN.match(ref) is None:
            raise Invalid("input_ref", "is not a reference this store handed out (inputs/<sha256>.<png|jpg|npy>)")
        path = self.root / ref
        if not path.is_file():
            raise NotFound(f"input {ref} is not stored here")
        return path

    def get(self, ref: str) -> bytes:
        return self.path(ref).read_bytes()

    @staticmethod
    def media_type(ref: str) -> str:
        return MEDIA_TYPES[ref.rsplit(".", 1)[-1]]
