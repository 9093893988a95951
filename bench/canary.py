"""Canary decisions on simulated candidates: 100 rollouts of a candidate 3 points worse, 100 of an equal one.

Each rollout runs the controller's own ``judge_canary`` tick by tick (rollout.simulation) with
the default plan: shares 5% / 25% / 50%, Wald SPRT alpha 0.01 / beta 0.02 on a 3-point margin.
Target: the worse one rolled back in >= 95% of rollouts, the equal one not rolled back in >= 95%.
Compared with the peer a fixed-horizon test would need: labeled samples per arm. Writes
bench/results/canary.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from shiftwatch.rollout.guardrails import required_labels_per_arm
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.rollout.simulation import rollback_rate

RESULTS = Path(__file__).parent / "results" / "canary.json"
TRIALS = 100
PRODUCTION_ACCURACIES = (0.90, 0.97)  # a weak and a strong baseline: the test's variance differs a lot
LABELED_PER_TICK = 400


def main() -> None:
    plan = RolloutPlan()
    rows = []
    started = time.perf_counter()
    for seed, production in enumerate(PRODUCTION_ACCURACIES):
        for name, candidate in (("3 points worse", production - 0.03), ("equal", production)):
            rate, outcomes, runs = rollback_rate(100 + 10 * seed + len(rows), TRIALS, plan, production, candidate,
                                                 labeled_per_tick=LABELED_PER_TICK)
            labeled = np.asarray([run.labeled_candidate for run in runs])
            rows.append({
                "production_accuracy": production,
                "candidate": name,
                "candidate_accuracy": round(candidate, 4),
                "trials": TRIALS,
                "rolled_back": rate,
                "outcomes": dict(outcomes),
                "mean_labeled_candidate_at_decision": float(labeled.mean()),
                "p90_labeled_candidate_at_decision": float(np.percentile(labeled, 90)),
                "fixed_horizon_labeled_per_arm": required_labels_per_arm(plan, production),
                "sprt_vs_fixed_horizon_samples": float(labeled.mean()) / required_labels_per_arm(plan, production),
                "target_met": rate >= 0.95 if name != "equal" else (1 - rate) >= 0.95,
            })
    print(f"{'production':>10s} {'candidate':>15s} {'rolled back':>12s} {'labeled (mean)':>15s} {'fixed-n/arm':>12s} {'ratio':>6s}")
    for row in rows:
        print(f"{row['production_accuracy']:10.2f} {row['candidate']:>15s} {row['rolled_back']:12.0%} "
              f"{row['mean_labeled_candidate_at_decision']:15.0f} {row['fixed_horizon_labeled_per_arm']:12d} "
              f"{row['sprt_vs_fixed_horizon_samples']:6.2f}")
    result = {
        "plan": plan.model_dump(),
        "labeled_per_tick": LABELED_PER_TICK,
        "rows": rows,
        "all_targets_met": all(row["target_met"] for row in rows),
        "seconds": time.perf_counter() - started,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
