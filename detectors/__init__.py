"""Detectors: data drift (embeddings, model outputs) and concept drift, scheduled, with alerts.

``DETECTORS`` maps a method name to its class; every class follows ``detectors.base``:
configure in ``__init__``, ``fit(reference, **context)``, ``test(current, **context) -> DriftResult``,
and ``get_config()`` / ``get_state()`` / ``from_state(config, state)`` for storage without pickle.
Context keywords: ``stream_ids`` and ``timestamps`` (correlated streams), ``labels``
(``accuracy_drop`` fit only).
"""

from __future__ import annotations

from shiftwatch.detectors.accuracy import AccuracyDropDetector
from shiftwatch.detectors.base import Detector
from shiftwatch.detectors.bbsd import BBSDDetector, ClassProbabilityKSDetector, ConfidenceKSDetector, LabelShiftDetector
from shiftwatch.detectors.classifier import ClassifierDetector
from shiftwatch.detectors.concept import LabeledAccuracyDetector
from shiftwatch.detectors.ks_pca import KSPCADetector
from shiftwatch.detectors.lsdd import LSDDDetector
from shiftwatch.detectors.mmd import MMDDetector

# Embedding detectors take (n, d) float arrays; BBSD and accuracy_drop take (n, k) class
# probabilities; labeled_accuracy takes 0/1 correctness flags.
DETECTORS: dict[str, type[Detector]] = {
    "mmd": MMDDetector,
    "lsdd": LSDDDetector,
    "ks": KSPCADetector,
    "classifier": ClassifierDetector,
    "bbsd": BBSDDetector,
    "bbsd_confidence": ConfidenceKSDetector,
    "bbsd_label": LabelShiftDetector,
    "bbsd_probs": ClassProbabilityKSDetector,
    "accuracy_drop": AccuracyDropDetector,
    "labeled_accuracy": LabeledAccuracyDetector,
}
EMBEDDING_DETECTORS = ("mmd", "lsdd", "ks", "classifier")
PROBABILITY_DETECTORS = ("bbsd", "bbsd_confidence", "bbsd_label", "bbsd_probs")
