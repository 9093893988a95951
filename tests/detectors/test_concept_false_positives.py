"""Issue 31: the scheduled labeled detector on unchanged labels pages at most at alpha, with cameras whose outcomes come in runs.

Each seeded window goes through ``correctness.test``, the compute step of a scheduled run of
``labeled_accuracy`` (the labels gate, the fit on the reference's labels, the test). Labels of one
camera are right or wrong together for a while, so a test that counts them as independent
rejects far more often than alpha; the effective sample sizes keep it near alpha.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from shiftwatch.detectors import DETECTORS, correctness
from shiftwatch.detectors.concept_windows import Traffic, window
from shiftwatch.detectors.configs import ConfigSpec

ALPHA = 0.05
SEEDS = 300
# Three standard deviations of a rate at alpha over SEEDS windows (0.0126 each): a wrong test lands far above.
HEADROOM = 0.035
CONFIG = ConfigSpec(id=1, model_version_id=1, name="labeled_accuracy", detector="labeled_accuracy", params={},
                    input="correctness", window_last_n=None, window_minutes=60, schedule_seconds=300, alpha=ALPHA,
                    min_effect=5.0, confirm_runs=1)  # fmt: skip


def rejections(traffic: Traffic, *, with_streams: bool) -> tuple[int, int, int]:
    """Over SEEDS windows of unchanged labels: (windows tested, p <= alpha, paged: significant and a drift)."""
    tested = significant = paged = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        reference, current = window(traffic, 4000, rng), window(traffic, 2500, rng)
        if not with_streams:  # every label its own camera: counted as independent
            reference, current = (replace(o, stream_ids=[str(i) for i in range(len(o))]) for o in (reference, current))
        outcome = correctness.test(CONFIG, DETECTORS, reference, current)
        if outcome.result is None:
            continue
        tested += 1
        significant += outcome.result.p_value <= ALPHA
        paged += outcome.result.p_value <= ALPHA and outcome.result.drift
    return tested, significant, paged


def test_the_labeled_detector_rejects_unchanged_labels_at_alpha_over_seeded_correlated_windows() -> None:
    tested, significant, paged = rejections(Traffic(accuracy=0.9, streams=8, stickiness=0.5), with_streams=True)
    assert tested == SEEDS  # 2,500 labels are enough for a 5-point drop: every window was tested
    assert significant / tested <= ALPHA + HEADROOM
    assert paged <= significant


def test_counting_correlated_labels_as_independent_would_page_well_above_alpha() -> None:
    tested, significant, _ = rejections(Traffic(accuracy=0.9, streams=8, stickiness=0.5), with_streams=False)
    assert tested == SEEDS and significant / tested > ALPHA + HEADROOM
