"""The omnibus embedding test behind ``--method auto``: multi-bandwidth MMD and per-feature KS, Bonferroni of two.

MMD-Agg (``mmd``) sees shifts of the joint distribution at several scales but, in 512
dimensions with 200 samples, not a move confined to 2 of them; per-feature KS (alibi-detect's
KSDrift, Bonferroni over features) sees exactly that and little else. Together, at alpha/2
each (``p = min(1, 2 min(p_mmd, p_ks))``), the family-wise error stays at alpha under any
dependence between the two. Each part applies the window-size effect rule itself; the
omnibus is drift when a part is, with the larger severity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftwatch.detectors.dependence import as_time_values, block_ids
from shiftwatch.detectors.effect import EFFECT_WINDOW
from shiftwatch.detectors.ks_pca import KSDetector
from shiftwatch.detectors.mmd import MMDDetector
from shiftwatch.detectors.two_sample import CombinedDetector, TwoSampleDetector, as_context, as_matrix


class KSFeaturesDetector(KSDetector):
    """KS on every raw feature, Bonferroni over features: the PCA projection replaced by the identity."""

    name = "ks_features"

    def __init__(self, alpha: float = 0.05, min_effect_size: float = 5.0, n_permutations: int = 500, seed: int = 0) -> None:
        super().__init__(alpha=alpha, correction="bonferroni", min_effect_size=min_effect_size, n_permutations=n_permutations, seed=seed)

    def fit(self, reference: np.ndarray, **context: Any) -> KSFeaturesDetector:
        x = as_matrix(reference, "reference", min_rows=4).astype(np.float64)
        self.mean_ = np.zeros(x.shape[1])
        self.components_ = np.eye(x.shape[1])
        self.explained_variance_ratio_ = x.var(axis=0) / max(float(x.var(axis=0).sum()), 1e-12)
        self.reference_scores_ = x
        self.reference_blocks_ = block_ids(
            x, as_context(context.get("stream_ids"), len(x), "stream_ids"), as_context(context.get("timestamps"), len(x), "timestamps")
        )
        return self


class AutoDetector(CombinedDetector):
    """MMD over 5 bandwidths and KS per feature, each at alpha / 2; reports the more significant part."""

    name = "auto"

    def __init__(
        self, alpha: float = 0.05, n_permutations: int = 500, seed: int = 0, effect_window: int = EFFECT_WINDOW
    ) -> None:
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.seed = seed
        self.effect_window = effect_window
        self.min_effect_size = MMDDetector().min_effect_size

    def _parts(self) -> list[TwoSampleDetector]:
        half = self.alpha / 2.0
        mmd = MMDDetector(alpha=half, n_permutations=self.n_permutations, seed=self.seed, effect_window=self.effect_window)
        ks = KSFeaturesDetector(alpha=half, n_permutations=self.n_permutations, seed=self.seed)
        ks.effect_window = self.effect_window
        return [mmd, ks]

    def fit(self, reference: np.ndarray, **context: Any) -> AutoDetector:
        self.reference_ = as_matrix(reference, "reference", min_rows=4)
        # Kept as plain arrays for the stored state (no pickle): stream ids as text, None as "";
        # timestamps as microseconds (datetime64 would also be stored, but text would not sort).
        streams, stamps = context.get("stream_ids"), context.get("timestamps")
        self.stream_ids_ = np.asarray([] if streams is None else ["" if s is None else str(s) for s in streams], dtype=str)
        self.timestamps_ = np.asarray([] if stamps is None else as_time_values(stamps), dtype=np.float64)
        self._fit_parts()
        return self

    def _fit_parts(self) -> None:
        context = {
            "stream_ids": self.stream_ids_ if len(self.stream_ids_) else None,
            "timestamps": self.timestamps_ if len(self.timestamps_) else None,
        }
        self._fitted = [part.fit(self.reference_, **context) for part in self._parts()]
