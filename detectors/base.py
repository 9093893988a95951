"""The detector contract: configure in ``__init__``, learn in ``fit(reference)``, decide in ``test(current)``.

Follows scikit-learn's estimator habits: the constructor stores configuration as given,
``fit`` sets attributes ending in ``_`` and returns ``self``, ``test`` returns a frozen
``DriftResult`` and never mutates configuration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True, slots=True)
class AtypicalSample:
    """One current-window sample, ranked by how unlike the reference it is (score: higher = stranger)."""

    index: int  # row of the current window
    score: float  # the detector's own score for this row
    reason: str = ""  # what the score measures, in words


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One test of a current window against a reference: the statistic, its significance, its size, its evidence."""

    method: str
    statistic: float
    p_value: float | None  # None for detectors that decide by threshold only
    threshold: float | None  # the decision threshold on the statistic (or on p_value: alpha)
    drift: bool  # significant AND not negligible at this window size (detectors.effect)
    n_reference: int
    n_current: int
    effect_size: float  # in ``effect_unit``, a unit a person understands
    effect_unit: str
    evidence: dict[str, Any] = field(default_factory=dict)  # per-dimension / per-sample evidence, JSON-able
    # None: derived from p_value <= threshold (or drift, for threshold-only detectors).
    significant: bool | None = None
    severity: str = ""  # none | negligible | low | medium | high; "" derives none / negligible / medium
    note: str = ""  # why a significant result is not drift, in a sentence
    atypical: tuple[AtypicalSample, ...] = ()  # the samples this detector ranked strangest, strangest first

    def __post_init__(self) -> None:
        if self.significant is None:
            by_p = self.p_value is not None and self.threshold is not None and self.p_value <= self.threshold
            object.__setattr__(self, "significant", bool(self.drift or by_p))
        if not self.severity:
            derived = "medium" if self.drift else ("negligible" if self.significant else "none")
            object.__setattr__(self, "severity", derived)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Detector:
    """Base class of every detector: a name, ``fit`` and ``test``."""

    name: ClassVar[str] = "detector"

    def fit(self, reference: np.ndarray, **context: Any) -> "Detector":
        raise NotImplementedError

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        raise NotImplementedError
