"""Harm names what it measured (issue 24): an accuracy estimate carries its method and interval; a confidence drop says it is one."""

from __future__ import annotations

import numpy as np

from shiftwatch.detectors import harm
from shiftwatch.detectors.accuracy import AccuracyDropDetector
from tests.detectors.test_accuracy import calibrated_outputs


def test_an_accuracy_estimate_becomes_harm_with_its_method_and_95_percent_interval() -> None:
    rng = np.random.default_rng(5)
    ref_probs, ref_labels = calibrated_outputs(rng, 2000, 0.1)
    cur_probs, _ = calibrated_outputs(rng, 1000, 0.5)
    result = AccuracyDropDetector(method="cbpe").fit(ref_probs, labels=ref_labels).test(cur_probs)
    estimate = harm.best([result], np.full(2000, 0.9), cur_probs.max(axis=1))
    assert estimate is not None and estimate.source == "accuracy_estimate" and estimate.method == "CBPE, label-free"
    assert estimate.points > 3 and estimate.interval is not None
    assert estimate.interval[0] <= estimate.points <= estimate.interval[1]
    low, high = estimate.accuracy_interval or (None, None)
    assert low is not None and low <= estimate.accuracy <= high
    sentence = estimate.sentence()
    assert sentence.startswith("estimated accuracy") and "95 % interval" in sentence and "CBPE" in sentence
    assert "P(correct | confidence)" in estimate.note and "random-slice labels" in estimate.note  # and what settles it
    assert harm.from_dict(estimate.to_dict()) == estimate  # what the alert stores reads back whole


def test_a_confidence_drop_is_called_so_and_says_why_it_has_no_interval() -> None:
    dropped = harm.confidence_drop(np.full(100, 0.99), np.full(100, 0.5))
    assert dropped is not None and dropped.interval is None and not dropped.is_accuracy
    sentence = dropped.sentence()
    assert sentence.startswith("mean confidence 49.0 points lower") and "accuracy 49" not in sentence
    assert "confidence drop" in sentence and "no interval" in sentence and "random slice" in sentence
    assert "about 402 random-slice labels of this window would measure the accuracy to ±5 points" in sentence
    # Without an accuracy estimator among the results, the confidence drop is what is left.
    assert harm.best([], np.full(100, 0.99), np.full(100, 0.5)) == dropped
    assert harm.best([], None, np.full(100, 0.5)) is None
