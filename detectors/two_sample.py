"""Shared parts of the two-sample detectors: input checks, the significance-and-effect decision, state without pickle.

State contract (for storing a fitted detector in the database without pickle):
``detector.get_config()`` returns the constructor arguments (JSON-able), ``detector.get_state()``
returns the fitted attributes (names ending in ``_``) as numpy arrays, floats, ints or strings,
and ``Class.from_state(config, state)`` rebuilds an equivalent fitted detector. ``state_to_npz``
/ ``state_from_npz`` turn a state into bytes and back (``allow_pickle=False``).
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftwatch.detectors.base import Detector
from shiftwatch.detectors.effect import EFFECT_WINDOW, Verdict, judge
from shiftwatch.errors import Invalid

StateValue = np.ndarray | float | int | str


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
    """A detector with alpha, the practical-effect rule of ``detectors.effect`` and a pickle-free state."""

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

    def get_config(self) -> dict[str, Any]:
        params = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in params if name != "self"}

    def get_state(self) -> dict[str, StateValue]:
        return {
            name: value for name, value in vars(self).items() if name.endswith("_") and not name.startswith("_")
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any]) -> "TwoSampleDetector":
        detector = cls(**config)
        for name, value in state.items():
            if not name.endswith("_"):
                raise Invalid("state", f"{name} is not a fitted attribute")
            array = np.asarray(value)
            if array.ndim == 0:
                value = array.item()
            setattr(detector, name, value)
        return detector


def state_to_npz(state: dict[str, StateValue]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: np.asarray(value) for name, value in state.items()})  # type: ignore[arg-type]  # numpy's stub lets ** fill allow_pickle
    return buffer.getvalue()


def state_from_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
