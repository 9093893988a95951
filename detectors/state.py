"""Fitted detector state as bytes: one ``.npz`` (arrays) with a JSON member (scalars, strings), never pickle.

A detector exposes ``get_state() -> dict`` of numpy arrays, numbers, strings (and lists or
dicts of those, nested dicts allowed) and ``from_state(config, state)``. Loading uses
``allow_pickle=False``, so a row in the database can never run code.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

_JSON_MEMBER = "__json__"
_SEP = "/"


def _split(state: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray], plain: dict[str, Any]) -> None:
    for key, value in state.items():
        if _SEP in key or key == _JSON_MEMBER:
            raise ValueError(f"state key {key!r} may not contain {_SEP!r} or be {_JSON_MEMBER!r}")
        path = f"{prefix}{key}"
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise ValueError(f"state {path!r} is an object array; only numeric arrays are stored")
            arrays[path] = value
        elif isinstance(value, dict):
            _split(value, path + _SEP, arrays, plain)
        elif isinstance(value, np.generic):
            plain[path] = value.item()
        else:
            plain[path] = value


def dump_state(state: dict[str, Any]) -> bytes:
    """Serialize a detector's state; raises ``ValueError`` for anything that would need pickle."""
    arrays: dict[str, np.ndarray] = {}
    plain: dict[str, Any] = {}
    _split(state, "", arrays, plain)
    arrays[_JSON_MEMBER] = np.frombuffer(json.dumps(plain).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def load_state(blob: bytes) -> dict[str, Any]:
    """The state ``dump_state`` wrote, nested dicts rebuilt."""
    flat: dict[str, Any] = {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        for key in archive.files:
            if key == _JSON_MEMBER:
                flat.update(json.loads(archive[key].tobytes().decode()))
            else:
                flat[key] = archive[key]
    state: dict[str, Any] = {}
    for path, value in flat.items():
        node = state
        *parents, leaf = path.split(_SEP)
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return state
