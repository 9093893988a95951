"""Shared parts of the two-sample detectors: input checks, the significance-and-effect decision, state without pickle.

The state contract (``get_config`` / ``get_state`` / ``from_state``) is ``base.Detector``'s;
``state_to_npz`` / ``state_from_npz`` turn a state into bytes and back (``allow_pickle=False``).
"""

from __future__ import annotations

import io
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from shiftwatch.detectors.base import Detector, DriftResult, StateValue
from shiftwatch.detectors.effect import EFFECT_WINDOW, Verdict, bonferroni_combined, judge
from shiftwatch.errors import Invalid


def as_matrix(values: Any, field: str, dims: int | None = None, min_rows: int = 2) -> np.ndarray:
    """A finite float32 (n, d) matrix, or ``Invalid`` naming what is wrong with it."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise Invalid(field, f"not an array: {exc}") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise Invalid(field, f"must be numeric, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise Invalid(field, f"must be a (n, d) array, got shape {array.shape}")
    if array.shape[0] < min_rows:
        raise Invalid(field, f"needs at least {min_rows} rows, got {array.shape[0]}")
    if array.shape[1] == 0:
        raise Invalid(field, "has no columns")
    if dims is not None and array.shape[1] != dims:
        raise Invalid(field, f"has {array.shape[1]} dimensions, the reference has {dims}")
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise Invalid(field, "contains NaN or infinite values")
    return array


def as_context(values: Sequence[Any] | np.ndarray | None, n: int, field: str) -> np.ndarray | None:
    """Stream ids or timestamps as an array of length n (or None)."""
    if values is None:
        return None
    array = np.asarray(values)
    if len(array) != n:
        raise Invalid(field, f"has {len(array)} entries for {n} samples")
    return array


def subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``cap`` of n samples (all of them when n <= cap)."""
    if n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def take(values: np.ndarray | None, index: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[index]


def top_indices(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the k largest scores, largest first."""
    k = min(k, len(scores))
    if k == 0:
        return []
    part = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in part[np.argsort(-scores[part], kind="stable")]]


class TwoSampleDetector(Detector):
    """A detector with alpha and the practical-effect rule of ``detectors.effect``."""

    alpha: float
    min_effect_size: float  # the method's "worth a look" effect: severity bands, and the bound without a null
    effect_window: int = EFFECT_WINDOW
    null_exponent: float = 1.0  # how the null critical value shrinks: (1/n + 1/m) ** exponent

    def decide(
        self,
        p_value: float | None,
        effect_size: float,
        n_reference: int,
        n_current: int,
        statistic: float | None = None,
        critical: float | None = None,
    ) -> Verdict:
        """Significant at alpha, and drift unless negligible at this window size (see ``detectors.effect``)."""
        return judge(
            p_value=p_value,
            alpha=self.alpha,
            effect=effect_size,
            min_effect=self.min_effect_size,
            n_reference=n_reference,
            n_current=n_current,
            effect_window=self.effect_window,
            statistic=statistic,
            critical=critical,
            exponent=self.null_exponent,
        )

    def check_fitted(self) -> None:
        if not any(name.endswith("_") and not name.startswith("_") for name in vars(self)):
            raise Invalid("detector", f"{self.name} must be fitted on a reference window before testing")


class CombinedDetector(TwoSampleDetector):
    """Several tests fitted on one reference and Bonferroni-combined; its stored state is the reference alone."""

    _fitted: list[TwoSampleDetector]

    @abstractmethod
    def _fit_parts(self) -> None:
        """Fit every part on ``reference_`` (and its stream context) into ``_fitted``."""

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any]) -> Self:
        detector = super().from_state(config, state)
        detector._fit_parts()  # the parts are refitted on the stored reference, as ``fit`` fitted them
        return detector

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        self.check_fitted()
        return bonferroni_combined(self.name, self.alpha, [part.test(current, **context) for part in self._fitted])


def state_to_npz(state: dict[str, StateValue]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: np.asarray(value) for name, value in state.items()})  # type: ignore[arg-type]  # numpy's stub lets ** fill allow_pickle
    return buffer.getvalue()


def state_from_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
