"""The label-free default (issue 24): its interval covers where calibration holds, and it says so where it cannot know."""

from __future__ import annotations

import numpy as np

from shiftwatch.detectors import harm, label_free
from tests.detectors.test_accuracy import K, calibrated_outputs

TRIALS = 40


def unseen_content(rng: np.random.Generator, n: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    """A window where ``share`` of the inputs are a class the model never saw: confidently put into classes 0-1, always wrong."""
    probs, labels = calibrated_outputs(rng, n, 0.1)
    new = rng.random(n) < share
    confidence = 0.9 + 0.1 * rng.beta(5, 1, size=n)
    predicted = rng.integers(0, 2, size=n)
    probs[new] = np.tile(((1 - confidence[new]) / (K - 1))[:, None], (1, K))
    probs[new, predicted[new]] = confidence[new]
    labels = np.where(new, K - 1, labels)  # the new content's true class, never predicted with a lead
    return probs, labels


def lost_confidence(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A window whose inputs got fainter: the model's confidences fall far below the reference's, its accuracy does not."""
    probs, labels = calibrated_outputs(rng, n, 0.1)
    flattened = 0.25 * probs + 0.75 / K  # same argmax, top-class confidence ~0.3
    return flattened, labels


def coverage_and_flags(make_current, trials: int = TRIALS) -> tuple[float, float, float]:
    """Over seeded windows: how often the interval held the truth, how often it was flagged, and either."""
    held, flagged = [], []
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        ref_probs, ref_labels = calibrated_outputs(rng, 2000, 0.1)
        probs, labels = make_current(rng)
        truth = float((probs.argmax(axis=1) == labels).mean())
        estimate = label_free.estimate(ref_probs, ref_labels, probs, seed=seed)
        held.append(estimate.interval[0] <= truth <= estimate.interval[1])
        flagged.append(not estimate.reliability.reliable)
    either = np.logical_or(held, flagged)
    return float(np.mean(held)), float(np.mean(flagged)), float(np.mean(either))


def test_where_calibration_holds_the_interval_covers_and_no_flag_is_raised() -> None:
    for hard_share in (0.1, 0.3):  # no shift; covariate shift to harder inputs
        covered, flagged, _ = coverage_and_flags(lambda rng, h=hard_share: calibrated_outputs(rng, 1000, h))
        assert covered >= 0.9, (hard_share, covered)
        assert flagged <= 0.1, (hard_share, flagged)


def test_new_content_and_lost_confidence_are_flagged_or_covered() -> None:
    for name, make in (("unseen", lambda rng: unseen_content(rng, 1000, 0.3)), ("faint", lambda rng: lost_confidence(rng, 1000))):
        covered, flagged, either = coverage_and_flags(make)
        assert either >= 0.9, (name, covered, flagged)
        assert flagged >= 0.9, (name, flagged)  # the estimate is wrong there: it must say so, not just be wide


def test_an_unreliable_estimate_says_so_and_asks_for_the_labels_that_would_settle_it() -> None:
    rng = np.random.default_rng(3)
    ref_probs, ref_labels = calibrated_outputs(rng, 2000, 0.1)
    probs, _ = unseen_content(rng, 1000, 0.3)
    estimate = label_free.estimate(ref_probs, ref_labels, probs)
    assert not estimate.reliability.reliable and any("other classes" in r for r in estimate.reliability.reasons)
    assert 100 < estimate.labels_to_settle < 400  # a ±5 point exact interval near 80-90 %
    stated = harm.from_label_free(estimate)
    assert stated.reliable is False and stated.source == "accuracy_estimate" and stated.interval is not None
    assert "UNRELIABLE" in stated.headline() and "CBPE" in stated.headline()
    assert f"about {estimate.labels_to_settle} random-slice labels" in stated.sentence()
    assert harm.from_dict(stated.to_dict()) == stated
    # The label-free default outranks a confidence drop, and a measured accuracy outranks both.
    assert harm.best([], np.full(10, 0.99), probs.max(axis=1), estimate) == stated


def test_a_reliable_estimate_still_names_what_no_label_free_check_can_see() -> None:
    rng = np.random.default_rng(5)
    ref_probs, ref_labels = calibrated_outputs(rng, 2000, 0.1)
    probs, _ = calibrated_outputs(rng, 1000, 0.1)
    stated = harm.from_label_free(label_free.estimate(ref_probs, ref_labels, probs))
    assert stated.reliable is True and "UNRELIABLE" not in stated.headline()
    assert "stays sure about while it gets them wrong" in stated.sentence() and "random-slice labels" in stated.sentence()
