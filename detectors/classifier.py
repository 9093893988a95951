"""Domain-classifier test: can a classifier tell current from reference? Held-out AUC per fold, exact p-values, Bonferroni.

A random forest is trained to separate the windows with k-fold cross-fitting (default 2);
every sample gets a score (probability of "current") from the model that did not see it.
Each fold is then its own exact test: its AUC against the permutations of the labels among
that fold's samples (blockwise on streams), the same ranks, no refitting. Exact because the
fold's model never saw the fold, so under no change its labels are exchangeable given the
model. The folds' p-values are combined by Bonferroni (``p = k min p_fold``), valid however
the folds depend on each other.

Why not pool the folds' scores into one AUC, as before issue 24: the folds' models are
trained on each other's folds, so their out-of-fold scores are positively dependent and
the within-fold permutation null of the pooled AUC was 1.25-1.5x too narrow (false-positive
rate 0.12 at alpha 0.05 over 200 null windows, now 0.035). Measured on the same windows:
bench/classifier_calibration.py.

Correlated streams: folds are contiguous stretches of stream time, and the blocks right next
to a held-out stretch are left out of that fold's training (blocked cross-validation with a
buffer): a near-duplicate frame in the training folds would otherwise let the classifier
"recognise" its neighbour (folds of single blocks: FPR 0.12 at alpha 0.05 on an AR(1)
stream; stretches without buffer: 0.075). The label permutation moves whole blocks
(see ``dependence``). Limitation, measured before issue 24: with three AR(1) cameras (phi = 0.9) and
300-frame windows the false-positive rate is still 0.075-0.10 at alpha 0.05 (few blocks
per fold, and adjacent blocks of one camera stay correlated); on camera streams prefer
``mmd`` or ``lsdd`` (0.055 / 0.02 on the same streams, tests/detectors/test_streams.py).

Effect size: the folds' mean AUC above chance in points (100 x (AUC - 0.5)): 0 when the
classifier cannot tell the windows apart, 50 when it separates every pair; each fold's AUC
and p-value are in the evidence. Evidence: the current samples
the classifier finds least like the reference (highest out-of-fold scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedGroupKFold

from shiftwatch.detectors.base import AtypicalSample, DriftResult
from shiftwatch.detectors.dependence import block_ids
from shiftwatch.detectors.permutation import permutation_critical, permutation_p_value, reference_indicators
from shiftwatch.detectors.two_sample import TwoSampleDetector, as_context, as_matrix, subsample, take, top_indices


@dataclass(frozen=True, slots=True)
class FoldTest:
    """One held-out fold: its AUC, its exact permutation p-value and the permuted AUCs."""

    auc: float
    p_value: float
    permuted: np.ndarray


ATYPICAL_REASON = "out-of-fold probability the domain classifier gives to \"from the current window\""


class ClassifierDetector(TwoSampleDetector):
    """Held-out AUC per fold of a reference-vs-current random forest, exact per fold, Bonferroni over folds."""

    name = "classifier"
    null_exponent = 0.5  # an AUC's null spread shrinks like sqrt(1/n + 1/m)

    def __init__(
        self,
        alpha: float = 0.05,
        n_permutations: int = 500,
        min_effect_size: float = 5.0,  # AUC points above chance; 0.55 is the smallest separation worth a look
        n_folds: int = 2,  # each fold held out once; Bonferroni over folds, so few large folds keep the power
        n_trees: int = 50,
        max_samples: int = 2000,
        n_evidence: int = 10,
        seed: int = 0,
    ) -> None:
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.min_effect_size = min_effect_size
        self.n_folds = n_folds
        self.n_trees = n_trees
        self.max_samples = max_samples
        self.n_evidence = n_evidence
        self.seed = seed

    def fit(self, reference: np.ndarray, **context: Any) -> ClassifierDetector:
        x = as_matrix(reference, "reference", min_rows=self.n_folds)
        keep = subsample(len(x), self.max_samples, np.random.default_rng(self.seed))
        self.reference_ = x[keep]
        self.reference_blocks_ = block_ids(
            self.reference_,
            take(as_context(context.get("stream_ids"), len(x), "stream_ids"), keep),
            take(as_context(context.get("timestamps"), len(x), "timestamps"), keep),
        )
        return self

    def test(self, current: np.ndarray, **context: Any) -> DriftResult:
        self.check_fitted()
        y = as_matrix(current, "current", dims=self.reference_.shape[1], min_rows=self.n_folds)
        rng = np.random.default_rng(self.seed + 1)
        keep = subsample(len(y), self.max_samples, rng)
        y_test = y[keep]
        current_blocks = block_ids(
            y_test,
            take(as_context(context.get("stream_ids"), len(y), "stream_ids"), keep),
            take(as_context(context.get("timestamps"), len(y), "timestamps"), keep),
        )
        n_reference_blocks = int(self.reference_blocks_.max()) + 1
        block_of = np.concatenate([self.reference_blocks_, current_blocks + n_reference_blocks])
        pooled = np.vstack([self.reference_, y_test])
        is_current = np.r_[np.zeros(len(self.reference_)), np.ones(len(y_test))].astype(int)

        dependent = len(np.unique(block_of)) < len(block_of)
        groups = self._time_stretches(block_of, n_reference_blocks) if dependent else block_of
        scores, fold_of = self._out_of_fold_scores(pooled, is_current, groups, block_of if dependent else None)
        folds = [self._fold_test(scores, fold_of == fold, block_of, n_reference_blocks, rng) for fold in np.unique(fold_of)]
        # Each fold's test is exact on its own; folds share training data, so they are combined
        # by Bonferroni (valid under any dependence) instead of pooling their ranks.
        deciding = min(folds, key=lambda f: f.p_value)
        p_value = min(1.0, len(folds) * deciding.p_value)
        observed = float(np.mean([f.auc for f in folds]))
        effect = 100.0 * max(observed - 0.5, 0.0)
        critical = permutation_critical(deciding.permuted, self.alpha / len(folds))

        current_scores = scores[len(self.reference_) :]
        top = top_indices(current_scores, self.n_evidence)
        return DriftResult(
            method=self.name,
            statistic=observed,
            p_value=p_value,
            threshold=self.alpha,
            # AUC's null centres on 0.5: the rule scales the gap above chance, in points.
            **self.decide(
                p_value, effect, len(self.reference_), len(y_test),
                statistic=100.0 * (deciding.auc - 0.5), critical=100.0 * (critical - 0.5),
            ).fields(),
            n_reference=len(self.reference_),
            n_current=len(y),
            effect_size=effect,
            effect_unit="AUC points above chance (0 = indistinguishable, 50 = fully separable)",
            atypical=tuple(
                AtypicalSample(int(keep[i]), float(current_scores[i]), ATYPICAL_REASON) for i in top
            ),
            evidence={
                "auc": observed,
                "fold_aucs": [f.auc for f in folds],
                "fold_p_values": [f.p_value for f in folds],
                "n_permutations": self.n_permutations,
                "most_atypical": [int(keep[i]) for i in top],
                "current_scores": [float(current_scores[i]) for i in top],
            },
        )

    def _time_stretches(self, block_of: np.ndarray, n_reference_blocks: int) -> np.ndarray:
        """Per window, ``n_folds`` runs of consecutive blocks (block ids follow stream, then time)."""
        reference = block_of < n_reference_blocks
        stretch = np.empty_like(block_of)
        for mask, offset, count in (
            (reference, 0, n_reference_blocks),
            (~reference, n_reference_blocks, int(block_of.max()) + 1 - n_reference_blocks),
        ):
            per_fold = int(np.ceil(count / self.n_folds))
            stretch[mask] = (block_of[mask] - offset) // per_fold + (0 if offset == 0 else self.n_folds)
        return stretch

    def _out_of_fold_scores(
        self, pooled: np.ndarray, is_current: np.ndarray, groups: np.ndarray, block_of: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        folds = StratifiedGroupKFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        scores = np.zeros(len(pooled))
        fold_of = np.zeros(len(pooled), dtype=np.int64)
        for fold, (train, held_out) in enumerate(folds.split(pooled, is_current, groups=groups)):
            if block_of is not None:
                held_blocks = np.unique(block_of[held_out])
                buffer = np.setdiff1d(np.r_[held_blocks - 1, held_blocks + 1], held_blocks)
                train = train[~np.isin(block_of[train], buffer)]
            model = RandomForestClassifier(
                n_estimators=self.n_trees, min_samples_leaf=5, random_state=self.seed + fold, n_jobs=1
            )
            model.fit(pooled[train], is_current[train])
            proba = model.predict_proba(pooled[held_out])
            scores[held_out] = proba[:, list(model.classes_).index(1)] if 1 in model.classes_ else 0.0
            fold_of[held_out] = fold
        return scores, fold_of

    def _fold_test(
        self, scores: np.ndarray, rows: np.ndarray, block_of: np.ndarray, n_reference_blocks: int, rng: np.random.Generator
    ) -> FoldTest:
        """AUC of one held-out fold and its permutation null (labels permuted among that fold's blocks only)."""
        fold_blocks = block_of[rows]
        blocks = np.unique(fold_blocks)
        reference_blocks = blocks[blocks < n_reference_blocks]
        # Local numbering with the reference's blocks first, as reference_indicators expects.
        ordered = np.r_[reference_blocks, blocks[blocks >= n_reference_blocks]]
        sorter = np.argsort(ordered)
        local = sorter[np.searchsorted(ordered[sorter], fold_blocks)]
        indicators = reference_indicators(local, len(reference_blocks), self.n_permutations, rng)
        current_ind = 1.0 - indicators.astype(np.float64)
        m = current_ind.sum(axis=0)
        n = len(fold_blocks) - m
        auc = (rankdata(scores[rows]) @ current_ind - m * (m + 1) / 2.0) / np.maximum(n * m, 1.0)
        return FoldTest(float(auc[0]), permutation_p_value(float(auc[0]), auc[1:]), auc[1:])
