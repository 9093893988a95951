"""Simulated canaries: how often the controller rolls back a candidate of known accuracy.

Each simulated rollout feeds labeled outcomes tick by tick through the canary steps (sticky
shares of traffic), and asks the controller's own ``judge_canary`` what to do at every tick,
exactly as ``controller.tick`` would. bench/canary.py and the tests use it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from shiftwatch.rollout.guardrails import judge_canary, sprt_from_counts
from shiftwatch.rollout.schemas import RolloutPlan

NEUTRAL_ARM = {"n": 0, "errors": 0, "error_rate": 0.0, "mean_confidence": None,
               "latency_p50_ms": None, "latency_p99_ms": None, "n_latency": 0}
NO_SHIFT = {"ks_statistic": None, "ks_p_value": None, "mean_drop": None}


@dataclass(frozen=True, slots=True)
class SimulatedRollout:
    outcome: str  # "rollback", "await_approval" or "undecided" (ran out of ticks, holding)
    ticks: int
    labeled_candidate: int
    labeled_production: int


def simulate_rollout(
    rng: np.random.Generator,
    plan: RolloutPlan,
    production_accuracy: float,
    candidate_accuracy: float,
    *,
    labeled_per_tick: int = 400,
    max_ticks: int = 2000,
) -> SimulatedRollout:
    step = 0
    step_n = 0
    hits_c = n_c = hits_p = n_p = 0
    for tick in range(1, max_ticks + 1):
        share = plan.canary_steps[step]
        to_candidate = int(rng.binomial(labeled_per_tick, share))
        to_production = labeled_per_tick - to_candidate
        hits_c += int(rng.binomial(to_candidate, candidate_accuracy))
        hits_p += int(rng.binomial(to_production, production_accuracy))
        n_c, n_p, step_n = n_c + to_candidate, n_p + to_production, step_n + to_candidate
        metrics = {
            "candidate": {**NEUTRAL_ARM, "n": step_n},
            "production": NEUTRAL_ARM,
            "confidence": NO_SHIFT,
            "agreement": None,
            "accuracy": sprt_from_counts(hits_c, n_c, hits_p, n_p, plan).to_dict(),
        }
        verdict = judge_canary(metrics, step, plan)
        if verdict.decision in ("rollback", "await_approval"):
            return SimulatedRollout(verdict.decision, tick, n_c, n_p)
        if verdict.decision == "advance":
            step, step_n = step + 1, 0
    return SimulatedRollout("undecided", max_ticks, n_c, n_p)


def rollback_rate(
    seed: int, trials: int, plan: RolloutPlan, production_accuracy: float, candidate_accuracy: float, **kwargs: int
) -> tuple[float, Counter[str], list[SimulatedRollout]]:
    rng = np.random.default_rng(seed)
    runs = [simulate_rollout(rng, plan, production_accuracy, candidate_accuracy, **kwargs) for _ in range(trials)]
    outcomes = Counter(run.outcome for run in runs)
    return outcomes["rollback"] / trials, outcomes, runs
