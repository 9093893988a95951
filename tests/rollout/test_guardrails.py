"""Guardrails and the sequential accuracy test, on simulated data with fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest

from shiftwatch.rollout.guardrails import breaches, required_labels_per_arm, sprt_accuracy
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.rollout.simulation import rollback_rate

PLAN = RolloutPlan()


def metrics(candidate: dict | None = None, confidence: dict | None = None, accuracy: dict | None = None) -> dict:
    arm = {"n": 500, "errors": 0, "error_rate": 0.0, "mean_confidence": 0.9, "latency_p50_ms": 2.0,
           "latency_p99_ms": 5.0, "n_latency": 500}
    return {
        "candidate": arm | (candidate or {}),
        "production": arm,
        "confidence": {"ks_statistic": 0.01, "ks_p_value": 0.9, "mean_drop": 0.0} | (confidence or {}),
        "agreement": None,
        "accuracy": sprt_accuracy(np.ones(10), np.ones(10), PLAN).to_dict() | (accuracy or {}),
    }


@pytest.mark.parametrize("production_accuracy", [0.9, 0.97])
def test_sprt_rolls_back_a_three_points_worse_candidate_and_keeps_an_equal_one(production_accuracy):
    worse, _, _ = rollback_rate(11, 150, PLAN, production_accuracy, production_accuracy - 0.03)
    equal, outcomes, _ = rollback_rate(12, 150, PLAN, production_accuracy, production_accuracy)
    assert worse >= 0.95
    assert equal <= 0.03 and outcomes["await_approval"] >= 0.95 * 150


def test_sprt_waits_below_thirty_labels_per_arm_and_reports_the_fixed_sample_size():
    result = sprt_accuracy(np.zeros(29), np.ones(500), PLAN)
    assert result.decision == "undecided"
    assert required_labels_per_arm(PLAN, 0.9) > required_labels_per_arm(PLAN.model_copy(update={"accuracy_margin": 0.06}), 0.9)


def test_error_rate_guardrail_needs_significance_not_one_unlucky_error():
    assert breaches(metrics({"errors": 1, "n": 999}), PLAN) == []
    (reason,) = breaches(metrics({"errors": 40, "n": 460}), PLAN)
    assert "error rate" in reason


def test_latency_and_confidence_guardrails():
    assert "latency" in breaches(metrics({"latency_p99_ms": 80.0}), PLAN)[0]
    assert breaches(metrics({"latency_p99_ms": 80.0, "n_latency": 10}), PLAN) == []  # too few samples for a p99
    assert "confidence" in breaches(metrics(confidence={"mean_drop": 0.2, "ks_p_value": 1e-6}), PLAN)[0]
    assert breaches(metrics(confidence={"mean_drop": 0.2, "ks_p_value": 0.3}), PLAN) == []


def test_plan_refuses_decreasing_or_out_of_range_steps():
    with pytest.raises(ValueError):
        RolloutPlan(canary_steps=[0.5, 0.25])
    with pytest.raises(ValueError):
        RolloutPlan(canary_steps=[0.0, 1.0])
