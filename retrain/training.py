"""The retraining set (reference data + labeled production samples, mixed by a documented policy) and the gate.

Mix policy (``MixPolicy``): every reference training image stays in (so the old
distribution is not forgotten), and each labeled production sample is repeated so that
production samples make up ``production_share`` of an epoch, more recent ones more often
(weight halves every ``half_life_days``). Repeats are rounded counts, not random draws:
the same data gives the same training set, with no RNG involved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shiftwatch.errors import Invalid


@dataclass(frozen=True, slots=True)
class LabeledData:
    """Labeled production samples as arrays; ``age_days`` is how long ago each was predicted."""

    images: np.ndarray
    labels: np.ndarray
    age_days: np.ndarray
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.labels)
        if len(self.images) != n or len(self.age_days) != n or (self.ids and len(self.ids) != n):
            raise Invalid("labeled", "images, labels, ages and ids must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray, ids: tuple[str, ...] = ()) -> LabeledData:
        """All samples equally recent: for callers that hold arrays without timestamps."""
        return cls(np.asarray(images, np.float32), np.asarray(labels, np.int64), np.zeros(len(labels)), ids)

    def take(self, index: np.ndarray) -> LabeledData:
        return LabeledData(
            self.images[index], self.labels[index], self.age_days[index], tuple(self.ids[i] for i in index) if self.ids else ()
        )

    def snapshot_sha256(self) -> str:
        """Identifies the labeled set: sorted (prediction id, label) pairs, or the arrays' bytes without ids."""
        digest = hashlib.sha256()
        if self.ids:
            for pid, label in sorted(zip(self.ids, self.labels.tolist())):
                digest.update(f"{pid}:{label}\n".encode())
        else:
            digest.update(np.ascontiguousarray(self.images, np.float32).tobytes())
            digest.update(np.ascontiguousarray(self.labels, np.int64).tobytes())
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class MixPolicy:
    # Share of an epoch's examples that are labeled production samples (after repeats).
    production_share: float = 0.5
    half_life_days: float = 7.0
    # No single sample is seen more than this many times per epoch (over-fitting one image).
    max_repeat: int = 20
    # Labeled samples kept aside (seeded) to measure the candidate on the new distribution.
    holdout_fraction: float = 0.3


def split_labeled(data: LabeledData, holdout_fraction: float, seed: int) -> tuple[LabeledData, LabeledData]:
    """(train, holdout) of the labeled samples; both non-empty when there are at least two."""
    if len(data) < 2:
        raise Invalid("labeled", f"need at least 2 labeled samples (one to train on, one to evaluate), have {len(data)}")
    order = np.random.default_rng(seed).permutation(len(data))
    held = min(max(1, round(len(data) * holdout_fraction)), len(data) - 1)
    return data.take(np.sort(order[held:])), data.take(np.sort(order[:held]))


def repeats(age_days: np.ndarray, n_reference: int, policy: MixPolicy) -> np.ndarray:
    """How many times each labeled sample appears in an epoch under ``policy``."""
    if len(age_days) == 0:
        return np.zeros(0, dtype=np.int64)
    weights = 0.5 ** (np.maximum(age_days, 0.0) / policy.half_life_days)
    target = policy.production_share / (1.0 - policy.production_share) * n_reference
    counts = np.rint(target * weights / weights.sum())
    clipped: np.ndarray = np.clip(counts, 1, policy.max_repeat).astype(np.int64)
    return clipped


def mix(
    reference_images: np.ndarray, reference_labels: np.ndarray, labeled: LabeledData, policy: MixPolicy
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The training set: all reference samples plus the repeated labeled samples; and a summary of it."""
    if not 0.0 <= policy.production_share < 1.0:
        raise Invalid("production_share", "must be in [0, 1)")
    counts = repeats(labeled.age_days, len(reference_labels), policy)
    index = np.repeat(np.arange(len(labeled)), counts)
    images = np.concatenate([reference_images, labeled.images[index]])
    labels = np.concatenate([reference_labels, labeled.labels[index]])
    summary = {
        "reference_samples": int(len(reference_labels)),
        "labeled_samples": int(len(labeled)),
        "labeled_examples_per_epoch": int(counts.sum()),
        "production_share": round(float(counts.sum() / max(len(labels), 1)), 4),
    }
    return images, labels, summary


@dataclass(frozen=True, slots=True)
class GateConfig:
    # The candidate may lose at most this much top-1 (a fraction) on held-out reference data...
    max_old_drop: float = 0.01
    # ...and must beat the production model on held-out labeled production data by at least this.
    min_new_gain: float = 0.0


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    old_base: float
    old_candidate: float
    new_base: float
    new_candidate: float
    reasons: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "accuracy_old": {"production": self.old_base, "candidate": self.old_candidate},
            "accuracy_new": {"production": self.new_base, "candidate": self.new_candidate},
            "reasons": list(self.reasons),
        }


def gate(old_base: float, old_candidate: float, new_base: float, new_candidate: float, config: GateConfig) -> GateResult:
    """No worse on the old distribution (within the margin), strictly better on the new one."""
    reasons = []
    if old_base - old_candidate > config.max_old_drop:
        reasons.append(
            f"loses {100 * (old_base - old_candidate):.1f} points on held-out reference data (allowed {100 * config.max_old_drop:.1f})"
        )
    if not new_candidate - new_base > config.min_new_gain:
        reasons.append(
            f"gains {100 * (new_candidate - new_base):.1f} points on held-out production data (needs more than {100 * config.min_new_gain:.1f})"
        )
    return GateResult(not reasons, old_base, old_candidate, new_base, new_candidate, tuple(reasons))
