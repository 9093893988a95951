"""Detectors: data drift (embeddings, model outputs) and concept drift, scheduled, with alerts.

``DETECTORS`` maps a method name to its class; every class follows ``detectors.base``:
configure in ``__init__``, ``fit(reference, **context)``, ``test(current, **context) -> DriftResult``,
and ``get_config()`` / ``get_state()`` / ``from_state(config, state)`` for storage without pickle.
Context keywords: ``stream_ids`` and ``timestamps`` (correlated streams), ``labels``
(``accuracy_drop`` fit only).

Importing this package imports no detector: ``DETECTORS[name]`` loads that one module on first
use, so ``import shiftwatch.detectors.mmd`` (numpy only) and ``shiftwatch --help`` stay free of
scikit-learn, SciPy, river and pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shiftwatch.lazy_registry import LazyRegistry

if TYPE_CHECKING:
    from shiftwatch.detectors.base import Detector

# Embedding detectors take (n, d) float arrays; BBSD and accuracy_drop take (n, k) class
# probabilities; labeled_accuracy takes 0/1 correctness flags.
DETECTORS: LazyRegistry[type[Detector]] = LazyRegistry({
    "auto": "shiftwatch.detectors.omnibus:AutoDetector",
    "ks_features": "shiftwatch.detectors.omnibus:KSFeaturesDetector",
    "mmd": "shiftwatch.detectors.mmd:MMDDetector",
    "lsdd": "shiftwatch.detectors.lsdd:LSDDDetector",
    "ks": "shiftwatch.detectors.ks_pca:KSDetector",
    "classifier": "shiftwatch.detectors.classifier:ClassifierDetector",
    "bbsd": "shiftwatch.detectors.bbsd:BBSDDetector",
    "bbsd_confidence": "shiftwatch.detectors.bbsd:BBSDConfidenceDetector",
    "bbsd_label": "shiftwatch.detectors.bbsd:BBSDLabelDetector",
    "bbsd_probs": "shiftwatch.detectors.bbsd:BBSDProbsDetector",
    "accuracy_drop": "shiftwatch.detectors.accuracy:AccuracyDropDetector",
    "labeled_accuracy": "shiftwatch.detectors.concept:LabeledAccuracyDetector",
})  # fmt: skip
EMBEDDING_DETECTORS = ("auto", "mmd", "lsdd", "ks", "ks_features", "classifier")
PROBABILITY_DETECTORS = ("bbsd", "bbsd_confidence", "bbsd_label", "bbsd_probs")
