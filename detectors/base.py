"""The detector contract: configure in ``__init__``, learn in ``fit(reference)``, decide in ``test(current)``.

Follows scikit-learn's estimator habits: the constructor stores configuration as given,
``fit`` sets attributes ending in ``_`` and returns ``self``, ``test`` returns a frozen
``DriftResult`` and never mutates configuration.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Self

import numpy as np

from shiftwatch.errors import Invalid

# What a fitted state may hold: stored as one npz array each (``two_sample.state_to_npz``), no pickle.
StateValue = np.ndarray | float | int | str


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


class Detector(ABC):
    """What every detector is held to: a name, what it reads, ``fit`` and ``test``, and a state stored without pickle.

    ``get_config`` / ``get_state`` / ``from_state`` default to scikit-learn's habits: the
    constructor's arguments are the config, the attributes ending in ``_`` are the fitted state.
    """

    name: ClassVar[str] = "detector"
    # What it reads: "embeddings", "probabilities" or "confidence" (configs.INPUTS, the
    # columns scheduled runs can feed), or "correctness" (0/1 flags, labeled_accuracy only).
    input_kind: ClassVar[str] = "embeddings"
    # The smallest effect worth a look, in the result's ``effect_unit``; None: the method has no fixed one.
    min_effect_size: float | None = None

    @abstractmethod
    def fit(self, reference: np.ndarray, **context: Any) -> Self:
        """Learn from the reference window; returns ``self``."""

    @abstractmethod
    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        """Test a current window against what ``fit`` learned."""

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, as stored on the instance (JSON-able)."""
        params = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in params if name != "self"}

    def get_state(self) -> dict[str, StateValue]:
        """The fitted attributes (public names ending in ``_``)."""
        return {
            name: value for name, value in vars(self).items() if name.endswith("_") and not name.startswith("_")
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any]) -> Self:
        """An equivalent fitted detector from ``get_config()`` and ``get_state()`` output."""
        detector = cls(**config)
        for name, value in state.items():
            if not name.endswith("_"):
                raise Invalid("state", f"{name} is not a fitted attribute")
            array = np.asarray(value)
            if array.ndim == 0:
                value = array.item()
            setattr(detector, name, value)
        return detector
