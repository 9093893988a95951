"""Guardrails and the sequential accuracy test: pure functions from comparison metrics to a verdict.

Accuracy is judged by a Wald sequential probability ratio test (SPRT) on the accuracy difference
candidate - production, H0: difference 0 against H1: difference -margin, on the normal
approximation of the running difference (a Gaussian SPRT: its log-likelihood ratio at n samples is
the sum of per-sample ratios, so Wald's boundaries hold at every look). Crossing the upper boundary
rolls back (chance <= alpha for an equal candidate); crossing the lower one accepts "not worse"
(chance <= beta for a candidate ``margin`` worse). bench/canary.py measures both rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import binom, binomtest, norm

from shiftwatch.detectors.univariate import ks_columns
from shiftwatch.rollout.schemas import RolloutPlan

# Below this many labeled samples per arm the normal approximation is poor: the SPRT waits.
MIN_LABELED_PER_ARM = 30
# Significance for the error-rate and agreement guardrails (one-sided binomial tests).
GUARDRAIL_ALPHA = 0.01
# A canary step whose share of the requests is this improbably low under a per-request split is starved.
STARVED_P = 0.001
# Fewer latency samples than this give a p99 that is one or two requests: not judged yet.
MIN_LATENCY_SAMPLES = 50


@dataclass(frozen=True, slots=True)
class SprtResult:
    """State of the sequential accuracy test."""

    decision: str  # "worse", "not_worse" or "undecided"
    llr: float
    upper: float  # log((1 - beta) / alpha): cross it and the candidate is worse
    lower: float  # log(beta / (1 - alpha)): cross it and the candidate is not worse
    n_candidate: int
    n_production: int
    accuracy_candidate: float | None
    accuracy_production: float | None
    required_per_arm: int  # fixed-sample size for the same alpha, power and margin

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the controller should do at this tick, and why."""

    decision: str  # "rollback", "advance", "hold" or "await_approval"
    reasons: list[str] = field(default_factory=list)
    evidence_sufficient: bool = False


def required_labels_per_arm(plan: RolloutPlan, baseline_accuracy: float | None) -> int:
    """Labeled samples per arm a fixed-size one-sided test needs to see a ``margin`` drop with power 1-beta."""
    p = min(max(baseline_accuracy if baseline_accuracy is not None else 0.9, 0.05), 0.95)
    z = norm.ppf(1 - plan.alpha) + norm.ppf(1 - plan.beta)
    return math.ceil(z * z * 2 * p * (1 - p) / plan.accuracy_margin**2)


def sprt_accuracy(correct_candidate: np.ndarray, correct_production: np.ndarray, plan: RolloutPlan) -> SprtResult:
    """Wald SPRT of equal vs ``margin`` worse accuracy, from per-sample correctness (0/1) of each arm."""
    return sprt_from_counts(
        int(np.sum(correct_candidate)), len(correct_candidate), int(np.sum(correct_production)), len(correct_production), plan
    )


def sprt_from_counts(hits_c: int, n_c: int, hits_p: int, n_p: int, plan: RolloutPlan) -> SprtResult:
    upper = math.log((1 - plan.beta) / plan.alpha)
    lower = math.log(plan.beta / (1 - plan.alpha))
    acc_c = hits_c / n_c if n_c else None
    acc_p = hits_p / n_p if n_p else None
    required = required_labels_per_arm(plan, acc_p)
    if acc_c is None or acc_p is None or min(n_c, n_p) < MIN_LABELED_PER_ARM:
        return SprtResult("undecided", 0.0, upper, lower, n_c, n_p, acc_c, acc_p, required)
    # Pooled Bernoulli variance, floored so a perfect-so-far arm does not make the test overconfident.
    pooled = (hits_c + hits_p) / (n_c + n_p)
    pooled = min(max(pooled, 0.02), 0.98)
    variance = pooled * (1 - pooled) * (1 / n_c + 1 / n_p)
    delta = plan.accuracy_margin
    llr = (-delta * (acc_c - acc_p) - delta * delta / 2) / variance
    decision = "worse" if llr >= upper else "not_worse" if llr <= lower else "undecided"
    return SprtResult(decision, float(llr), upper, lower, n_c, n_p, acc_c, acc_p, required)


def confidence_shift(production: np.ndarray, candidate: np.ndarray) -> dict[str, float | None]:
    """KS test of the two confidence distributions and the mean drop (production - candidate)."""
    if len(production) < 2 or len(candidate) < 2:
        return {"ks_statistic": None, "ks_p_value": None, "mean_drop": None}
    distance, p_value = ks_columns(production[:, None], candidate[:, None])
    return {
        "ks_statistic": float(distance[0]),
        "ks_p_value": float(p_value[0]),
        "mean_drop": float(np.mean(production) - np.mean(candidate)),
    }


def breaches(metrics: dict[str, Any], plan: RolloutPlan) -> list[str]:
    """Guardrails the candidate has broken, each as a sentence a person can act on."""
    found: list[str] = []
    cand = metrics["candidate"]
    errors, served = cand["errors"], cand["n"]
    if errors and binomtest(errors, errors + served, plan.max_error_rate, alternative="greater").pvalue < GUARDRAIL_ALPHA:
        found.append(f"error rate {errors}/{errors + served} is significantly above {plan.max_error_rate:.3f}")
    if cand["n_latency"] >= MIN_LATENCY_SAMPLES and cand["latency_p99_ms"] > plan.latency_budget_ms:
        found.append(f"p99 latency {cand['latency_p99_ms']:.1f} ms exceeds the budget of {plan.latency_budget_ms:.1f} ms")
    shift = metrics["confidence"]
    if (
        shift["mean_drop"] is not None
        and shift["mean_drop"] > plan.max_confidence_drop
        and shift["ks_p_value"] < plan.confidence_ks_alpha
    ):
        found.append(
            f"mean confidence dropped by {shift['mean_drop']:.3f} (> {plan.max_confidence_drop:.3f}, "
            f"KS p={shift['ks_p_value']:.2g})"
        )
    agreement = metrics.get("agreement")
    if agreement and agreement["n_pairs"]:
        test = binomtest(agreement["agree"], agreement["n_pairs"], plan.min_agreement, alternative="less")
        if test.pvalue < GUARDRAIL_ALPHA:
            found.append(f"agreement with production {agreement['rate']:.3f} is significantly below {plan.min_agreement:.3f}")
    if metrics["accuracy"]["decision"] == "worse":
        acc = metrics["accuracy"]
        found.append(
            f"accuracy {acc['accuracy_candidate']:.3f} vs {acc['accuracy_production']:.3f} on labeled samples: "
            f"SPRT says worse by {plan.accuracy_margin:.2f} (LLR {acc['llr']:.2f} >= {acc['upper']:.2f})"
        )
    return found


def accuracy_evidence_sufficient(metrics: dict[str, Any], plan: RolloutPlan) -> bool:
    if not plan.require_labels:
        return True
    # The SPRT's own stopping rule: "not worse" is reached with power 1-beta against a margin drop.
    # A fixed sample count is not enough: stopping there would skip the test's guarantee.
    return metrics["accuracy"]["decision"] == "not_worse"


def judge_shadow(metrics: dict[str, Any], plan: RolloutPlan) -> Verdict:
    found = breaches(metrics, plan)
    if found:
        return Verdict("rollback", found)
    pairs = metrics["agreement"]["n_pairs"]
    if pairs < plan.min_shadow_pairs:
        return Verdict("hold", [f"{pairs} of {plan.min_shadow_pairs} shadow pairs so far"])
    return Verdict("advance", [f"{pairs} shadow pairs, no guardrail breached"])


def starved(metrics: dict[str, Any], rollout_id: int | None = None) -> str | None:
    """Why a canary step gets far fewer predictions than its share of the traffic, and what to do; None if it does not.

    Routing is sticky per client key, so the share is of clients: a few keys can all fall outside it.
    """
    candidate, production, share = metrics["candidate"]["n"], metrics["production"]["n"], metrics.get("share")
    total = candidate + production
    if share is None or not 0 < share < 1 or total == 0 or binom.cdf(candidate, total, share) >= STARVED_P:
        return None
    rollout = "" if rollout_id is None else f" {rollout_id}"
    keys = metrics.get("client_keys")
    seen = ("GET /v1/gateway/stats?model=... shows the keys seen" if not keys else
            f"the gateway has seen {keys['keys_seen']} distinct client keys, {keys['keys_in_canary']} of them in "
            f"the canary")  # fmt: skip
    return (
        f"the canary got {candidate} of {total} requests at this step where a {share:.0%} share would send about "
        f"{share * total:.0f}: routing is sticky per X-Client-Key (one client sees one model), so the share is of "
        f"clients, and too few distinct keys are sending traffic to fill it (fewer than {math.ceil(1 / share)} cannot "
        f"fill this step; {seen}). "
        "Send requests from more keys, or without X-Client-Key (then split per request), or stop this rollout and "
        f"retry it with a larger first step: `shiftwatch rollout reject{rollout} --reason ...` then "
        f"`shiftwatch rollout retry{rollout} --steps 0.25,0.5`"
    )


def judge_canary(metrics: dict[str, Any], step: int, plan: RolloutPlan, rollout_id: int | None = None) -> Verdict:
    found = breaches(metrics, plan)
    if found:
        return Verdict("rollback", found)
    step_n = metrics["candidate"]["n"]
    if step_n < plan.min_step_predictions:
        why = starved(metrics, rollout_id)
        return Verdict("hold", [f"{step_n} of {plan.min_step_predictions} candidate predictions at this step"
                                + (f"; {why}" if why else "")])
    if step + 1 < len(plan.canary_steps):
        return Verdict("advance", [f"step {step + 1} of {len(plan.canary_steps)} passed with {step_n} predictions"])
    sufficient = accuracy_evidence_sufficient(metrics, plan)
    if not sufficient:
        acc = metrics["accuracy"]
        return Verdict(
            "hold",
            [
                f"final step: accuracy evidence insufficient: {acc['n_candidate']} candidate / "
                f"{acc['n_production']} production labeled samples, the SPRT is undecided (a fixed-size test "
                f"would need about {acc['required_per_arm']} per arm)"
            ],
        )
    return Verdict("await_approval", ["all steps passed; waiting for a person to approve"], evidence_sufficient=True)
