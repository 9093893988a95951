"""Effect sizes gate alerts, evidence points at the shifted samples, state survives storage without pickle."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from shiftwatch.detectors import DETECTORS, EMBEDDING_DETECTORS, PROBABILITY_DETECTORS
from shiftwatch.detectors.base import DriftResult
from shiftwatch.detectors.effect import SEVERITIES, with_min_effect
from shiftwatch.detectors.harm import Harm, severity
from shiftwatch.detectors.two_sample import state_from_npz, state_to_npz
from shiftwatch.errors import Invalid

FAST = {"mmd": {"n_permutations": 99}, "lsdd": {"n_permutations": 99}, "classifier": {"n_permutations": 99, "n_trees": 10}}


def test_shift_too_small_for_a_smaller_window_is_significant_but_negligible() -> None:
    # 0.07 sd on 8 dims: significant in 2,000 + 2,000, too small for the 250-sample window the rule asks about.
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(2000, 8))
    current = rng.normal(size=(2000, 8)) + 0.07
    result = DETECTORS["mmd"](n_permutations=199, effect_window=250).fit(reference).test(current)
    assert result.significant and result.p_value <= 0.05
    assert not result.drift and result.severity == "negligible"
    assert "250 samples" in result.note  # drift: false never comes without the reason
    at_window = DETECTORS["mmd"](n_permutations=199, effect_window=2000).fit(reference).test(current)
    assert at_window.drift and at_window.severity in ("low", "medium", "high") and at_window.note == ""


def test_fifty_thousand_sample_window_does_not_page_on_a_trivial_shift() -> None:
    # Evidently #50: at 50,000 samples everything is significant; the rule keeps it from paging.
    rng = np.random.default_rng(10)
    reference = rng.normal(size=(50_000, 4))
    current = rng.normal(size=(50_000, 4)) + 0.04
    result = DETECTORS["ks"]().fit(reference).test(current)
    assert result.significant and not result.drift and result.severity == "negligible"
    visible = DETECTORS["ks"]().fit(reference).test(current + 0.3)  # a 1,000-sample window sees this
    assert visible.drift and visible.severity != "negligible"


def test_explicit_min_effect_turns_a_drift_into_a_negligible_one_with_a_reason() -> None:
    rng = np.random.default_rng(11)
    result = DETECTORS["mmd"](n_permutations=99).fit(rng.normal(size=(300, 6))).test(rng.normal(size=(300, 6)) + 0.5)
    assert result.drift
    gated = with_min_effect(result, result.effect_size + 1.0)
    assert gated.significant and not gated.drift and gated.severity == "negligible" and "configured" in gated.note
    assert with_min_effect(result, None) == result


@pytest.mark.parametrize("name", EMBEDDING_DETECTORS)
def test_every_embedding_result_has_effect_with_a_unit_and_json_evidence(name: str) -> None:
    rng = np.random.default_rng(1)
    result = DETECTORS[name](**FAST.get(name, {})).fit(rng.normal(size=(120, 6))).test(rng.normal(size=(80, 6)) + 1.0)
    assert isinstance(result, DriftResult)
    assert result.effect_size > 0 and result.effect_unit
    assert result.significant == (result.p_value <= result.threshold)
    assert result.drift <= result.significant and result.severity in SEVERITIES
    json.dumps(result.to_dict())


@pytest.mark.parametrize("name", PROBABILITY_DETECTORS)
def test_every_output_result_has_effect_with_a_unit(name: str) -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(5), size=200)
    result = DETECTORS[name]().fit(probs).test(rng.dirichlet(np.ones(5) * 0.3, size=100))
    assert result.effect_size > 0 and result.effect_unit
    json.dumps(result.to_dict())


def test_witness_evidence_names_the_atypical_samples() -> None:
    rng = np.random.default_rng(3)
    current = rng.normal(size=(200, 5))
    outliers = [7, 50, 123, 180, 199]
    current[outliers] += 6.0
    result = DETECTORS["mmd"](n_permutations=99).fit(rng.normal(size=(200, 5))).test(current)
    assert set(result.evidence["most_atypical"][:5]) == set(outliers)


def test_domain_classifier_scores_point_at_the_shifted_samples() -> None:
    rng = np.random.default_rng(4)
    current = rng.normal(size=(200, 5))
    shifted = np.arange(0, 200, 4)
    current[shifted, 0] += 4.0
    result = DETECTORS["classifier"](**FAST["classifier"]).fit(rng.normal(size=(200, 5))).test(current)
    assert result.drift
    assert len(set(result.evidence["most_atypical"]) & set(shifted.tolist())) >= 8


@pytest.mark.parametrize("name", ["mmd", "lsdd", "ks", "classifier", "bbsd_confidence", "bbsd_label", "bbsd_probs"])
def test_state_round_trips_through_npz_without_pickle(name: str) -> None:
    rng = np.random.default_rng(5)
    is_probs = name.startswith("bbsd")
    make = (lambda n: rng.dirichlet(np.ones(4), size=n)) if is_probs else (lambda n: rng.normal(size=(n, 6)))
    detector = DETECTORS[name](**FAST.get(name, {})).fit(make(150), stream_ids=["a"] * 150, timestamps=np.arange(150))
    config, state = detector.get_config(), detector.get_state()
    json.dumps(config)
    restored = DETECTORS[name].from_state(config, state_from_npz(state_to_npz(state)))
    current = make(100)
    assert restored.test(current).to_dict() == detector.test(current).to_dict()


def test_testing_before_fitting_and_mismatched_dimensions_are_invalid() -> None:
    rng = np.random.default_rng(6)
    with pytest.raises(Invalid):
        DETECTORS["mmd"]().test(rng.normal(size=(10, 3)))
    detector = DETECTORS["mmd"]().fit(rng.normal(size=(10, 3)))
    with pytest.raises(Invalid, match="dimensions"):
        detector.test(rng.normal(size=(10, 4)))
    with pytest.raises(Invalid, match="NaN"):
        detector.test(np.full((10, 3), np.nan))
    with pytest.raises(Invalid):
        DETECTORS["bbsd"]().fit(rng.normal(size=(10, 3)))  # logits, not probabilities


def test_big_window_is_tested_with_bounded_memory() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(1000, 32)).astype(np.float32)
    current = rng.normal(size=(20_000, 32)).astype(np.float32)
    detector = DETECTORS["mmd"](n_permutations=99, max_samples=1000).fit(reference)
    tracemalloc.start()
    result = detector.test(current)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.n_current == 20_000 and result.evidence["n_current_tested"] == 1000
    assert peak < 100 * 2**20  # the window itself is 2.5 MB; the 2,000^2 kernel is 16 MB


def test_severity_follows_estimated_harm() -> None:
    assert severity(Harm(points=0.2, source="atc")) == "low"
    assert severity(Harm(points=3.0, source="atc")) == "medium"
    assert severity(Harm(points=12.0, source="atc")) == "high"
    assert severity(None) == "medium"
