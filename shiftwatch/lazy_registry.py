"""A name -> class registry that imports each class on first use, for members whose modules are slow to import.

Keeps ``import shiftwatch.detectors`` (and so ``shiftwatch --help``) from loading scikit-learn,
SciPy and river just to list names; looking a name up imports that one module, nothing else.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TypeVar

T = TypeVar("T")


class LazyRegistry(Mapping[str, T]):
    """Read-only mapping from a name to a ``"package.module:Attribute"`` target, resolved on lookup and cached."""

    def __init__(self, targets: Mapping[str, str]) -> None:
        for name, target in targets.items():
            module, _, attribute = target.partition(":")
            if not module or not attribute:
                raise ValueError(f"registry entry {name!r}: {target!r} is not 'module:Attribute'")
        self._targets = dict(targets)
        self._loaded: dict[str, T] = {}

    def __getitem__(self, name: str) -> T:
        if name not in self._loaded:
            module, _, attribute = self._targets[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._targets  # without importing, unlike Mapping's default

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def target(self, name: str) -> str:
        """Where ``name`` lives, as ``"module:Attribute"``, without importing it."""
        return self._targets[name]

    def __repr__(self) -> str:
        return f"LazyRegistry({self._targets!r})"
