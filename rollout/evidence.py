"""The approver's evidence table: each guardrail's value on both arms, the difference with its interval, the threshold.

Built from a stored comparison and the rollout's own plan, so the page shows the threshold
the controller judged against, not today's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shiftwatch.rollout.guardrails import GUARDRAIL_ALPHA, MIN_LABELED_PER_ARM, MIN_LATENCY_SAMPLES
from shiftwatch.rollout.schemas import RolloutPlan


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    """One line of the evidence table; ``key`` names it for tests and styling."""

    key: str
    metric: str
    production: str
    candidate: str
    difference: str  # candidate - production [95% interval], or "" where none applies
    guardrail: str


def fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def interval_text(interval: dict[str, Any] | None, digits: int = 3) -> str:
    """'+0.012 [-0.030, +0.055]': the estimate and its 95% interval, signed."""
    if not interval:
        return "-"
    return f"{interval['estimate']:+.{digits}f} [{interval['low']:+.{digits}f}, {interval['high']:+.{digits}f}]"


def accuracy_undecided(metrics: dict[str, Any] | None) -> bool:
    """True while the SPRT has not accepted "not worse" (no comparison yet counts as undecided)."""
    return not metrics or metrics["accuracy"]["decision"] != "not_worse"


def evidence_rows(metrics: dict[str, Any], plan: RolloutPlan) -> list[EvidenceRow]:
    """The rows of the approval page's table, in the order a person checks them."""
    cand, prod, acc = metrics["candidate"], metrics["production"], metrics["accuracy"]
    diff = metrics.get("differences") or {}  # comparisons stored before intervals existed have none
    stage_n = (
        f"at least {plan.min_shadow_pairs} shadow pairs" if metrics["stage"] == "shadow"
        else f"at least {plan.min_step_predictions} candidate predictions per step"
    )
    shift = metrics["confidence"]
    rows = [
        EvidenceRow("predictions", "predictions", fmt(prod["n"]), fmt(cand["n"]), "", stage_n),
        EvidenceRow("error_rate", "error rate", fmt(prod["error_rate"], 4), fmt(cand["error_rate"], 4),
                    interval_text(diff.get("error_rate"), 4),
                    f"rolled back if significantly above {plan.max_error_rate:.3f} (binomial, p < {GUARDRAIL_ALPHA:g})"),
        EvidenceRow("latency_p99_ms", "latency p99 ms", fmt(prod["latency_p99_ms"], 2), fmt(cand["latency_p99_ms"], 2),
                    interval_text(diff.get("latency_p99_ms"), 2),
                    f"candidate p99 at most {plan.latency_budget_ms:g} ms (judged from {MIN_LATENCY_SAMPLES} requests)"),
        EvidenceRow("latency_p50_ms", "latency p50 ms", fmt(prod["latency_p50_ms"], 2), fmt(cand["latency_p50_ms"], 2),
                    interval_text(diff.get("latency_p50_ms"), 2), "shown, not judged"),
        EvidenceRow("mean_confidence", "mean confidence", fmt(prod["mean_confidence"]), fmt(cand["mean_confidence"]),
                    interval_text(diff.get("mean_confidence")),
                    f"rolled back if it drops by more than {plan.max_confidence_drop:.3f} with KS p < "
                    f"{plan.confidence_ks_alpha:g} (KS p now {fmt(shift['ks_p_value'], 4)})"),
    ]
    agreement = metrics.get("agreement")
    if agreement:
        rows.append(EvidenceRow("agreement", "agreement (same input)", "", fmt(agreement["rate"]),
                                interval_text(agreement.get("interval")) + " (rate)" if agreement.get("interval") else "-",
                                f"rolled back if significantly below {plan.min_agreement:.2f} "
                                f"({agreement['agree']} of {agreement['n_pairs']} pairs agree)"))
    rows.append(EvidenceRow(
        "accuracy", "accuracy (random label slice)",
        f"{fmt(acc['accuracy_production'])} on {acc['n_production']} labels",
        f"{fmt(acc['accuracy_candidate'])} on {acc['n_candidate']} labels",
        interval_text(diff.get("accuracy")),
        f"SPRT, worse by {plan.accuracy_margin:.2f} rolls back; 'not worse' allows approval. Now "
        f"{acc['decision']} (LLR {acc['llr']:.2f}, bounds {acc['lower']:.2f} / {acc['upper']:.2f}; "
        f"tests from {MIN_LABELED_PER_ARM} labels per arm, a fixed-size test needs about {acc['required_per_arm']})",
    ))
    return rows
