"""Detectors: data drift (embeddings, model outputs) and concept drift, scheduled, with alerts.

``DETECTORS`` maps a method name to its class; every class follows ``detectors.base``:
configure in ``__init__``, ``fit(reference, **context)``, ``test(current, **context) -> DriftResult``,
and ``get_config()`` / ``get_state()`` / ``from_state(config, state)`` for storage without pickle.
"""

from __future__ import annotations

from shiftwatch.detectors.base import Detector
from shiftwatch.detectors.mmd import MMDDetector

DETECTORS: dict[str, type[Detector]] = {
    "mmd": MMDDetector,
}
