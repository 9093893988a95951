"""Candidate vs production metrics, read from logged predictions (the gateway's, or anyone's via the SDK).

Shadow pairs predictions by request id (same input, both versions). Canary compares the two routes
over the same period, unpaired. Everything comes from the ``predictions`` table, so a team that
serves elsewhere and logs both versions with ``route`` and ``request_id`` gets the same comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shiftwatch.collector.queries import Window, window
from shiftwatch.rollout.guardrails import confidence_shift, sprt_accuracy
from shiftwatch.rollout.intervals import Interval, mean_difference, newcombe_difference, quantile_difference, rate
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.rollout.tables import CanaryKeyCount, Rollout, ServingError

# input_ref -> true class, for whatever inputs have been labeled.
LabelLookup = Callable[[Session, list[str]], dict[str, int]]


@dataclass(frozen=True, slots=True)
class Disagreement:
    """A shadow pair where the versions disagree: worth a person's label."""

    prediction_id: str
    ts: datetime
    request_id: str
    input_ref: str | None
    production_class: int
    candidate_class: int

    def to_item(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "ts": self.ts.isoformat(),
            "request_id": self.request_id,
            "input_ref": self.input_ref,
            "production_class": self.production_class,
            "candidate_class": self.candidate_class,
        }


def _percentile(values: np.ndarray, q: float) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) if values.size else None


def arm_summary(rows: Window, errors: int) -> dict[str, Any]:
    latency = rows.latency_ms[np.isfinite(rows.latency_ms)]
    n = len(rows)
    return {
        "n": n,
        "errors": errors,
        "error_rate": errors / (errors + n) if errors + n else 0.0,
        "mean_confidence": float(rows.confidence.mean()) if n else None,
        "latency_p50_ms": _percentile(latency, 50),
        "latency_p99_ms": _percentile(latency, 99),
        "n_latency": int(latency.size),
    }


def differences(
    production: Window, candidate: Window, errors: tuple[int, int], correct: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
    """Candidate - production for each guardrail metric, with 95% intervals (None while an arm is empty).

    ``errors`` and ``correct`` are (production, candidate): error counts and 0/1 correctness per labeled sample.
    """

    def as_dict(interval: Interval | None) -> dict[str, float | str] | None:
        return None if interval is None else interval.to_dict()

    (errors_p, errors_c), (correct_p, correct_c) = errors, correct
    return {
        "accuracy": as_dict(newcombe_difference(int(correct_c.sum()), len(correct_c), int(correct_p.sum()), len(correct_p))),
        "error_rate": as_dict(newcombe_difference(errors_c, errors_c + len(candidate), errors_p, errors_p + len(production))),
        "mean_confidence": as_dict(mean_difference(candidate.confidence, production.confidence)),
        "latency_p50_ms": as_dict(quantile_difference(candidate.latency_ms, production.latency_ms, 50)),
        "latency_p99_ms": as_dict(quantile_difference(candidate.latency_ms, production.latency_ms, 99)),
    }


def _errors(session: Session, version_id: int, route: str, since: datetime, until: datetime) -> int:
    stmt = (
        select(func.count())
        .select_from(ServingError)
        .where(
            ServingError.model_version_id == version_id,
            ServingError.route == route,
            ServingError.ts >= since,
            ServingError.ts < until,
        )
    )
    return int(session.scalar(stmt) or 0)


def _correctness(session: Session, rows: Window, labels: LabelLookup, index: np.ndarray | None = None) -> np.ndarray:
    """0/1 per labeled row of ``rows`` (restricted to ``index`` when given)."""
    positions = np.arange(len(rows)) if index is None else index
    refs = [rows.input_ref[i] for i in positions]
    known = labels(session, [r for r in refs if r]) if any(refs) else {}
    hits = [int(rows.predicted_class[i] == known[ref]) for i, ref in zip(positions, refs) if ref in known]
    return np.asarray(hits, dtype=np.int64)


def compare_shadow(
    session: Session, rollout: Rollout, plan: RolloutPlan, now: datetime, labels: LabelLookup
) -> tuple[dict[str, Any], list[Disagreement]]:
    since = rollout.stage_started_at
    production = window(
        session, rollout.baseline_version_id, start=since, end=now, route="production", last_n=plan.max_window
    )
    shadow = window(
        session, rollout.candidate_version_id, start=since, end=now, route="shadow", last_n=plan.max_window
    )
    by_request = {rid: i for i, rid in enumerate(production.request_id) if rid}
    pairs = [(by_request[rid], j) for j, rid in enumerate(shadow.request_id) if rid in by_request]
    p_idx = np.asarray([p for p, _ in pairs], dtype=np.int64)
    s_idx = np.asarray([s for _, s in pairs], dtype=np.int64)
    agree = production.predicted_class[p_idx] == shadow.predicted_class[s_idx]
    disagreements = [
        Disagreement(
            prediction_id=str(shadow.ids[s]),
            ts=shadow.ts[s].astype(datetime).replace(tzinfo=UTC),
            request_id=str(shadow.request_id[s]),
            input_ref=shadow.input_ref[s] or production.input_ref[p],
            production_class=int(production.predicted_class[p]),
            candidate_class=int(shadow.predicted_class[s]),
        )
        for (p, s), same in zip(pairs, agree)
        if not same
    ]
    # Paired samples: labels of the shared inputs judge both versions on the same images.
    correct = (_correctness(session, production, labels, p_idx), _correctness(session, shadow, labels, s_idx))
    errors = (
        _errors(session, rollout.baseline_version_id, "production", since, now),
        _errors(session, rollout.candidate_version_id, "shadow", since, now),
    )
    agreement_interval = rate(int(agree.sum()), len(pairs))
    metrics = {
        "stage": "shadow",
        "since": since.isoformat(),
        "candidate": arm_summary(shadow, errors[1]),
        "production": arm_summary(production, errors[0]),
        "agreement": {
            "n_pairs": len(pairs),
            "agree": int(agree.sum()),
            "rate": float(agree.mean()) if len(pairs) else None,
            "interval": None if agreement_interval is None else agreement_interval.to_dict(),
        },
        "confidence": confidence_shift(production.confidence[p_idx], shadow.confidence[s_idx]),
        "accuracy": sprt_accuracy(correct[1], correct[0], plan).to_dict(),
        "differences": differences(production, shadow, errors, correct),
    }
    return metrics, disagreements


def client_keys(session: Session, rollout: Rollout) -> dict[str, int] | None:
    """The client keys the gateways have seen during this canary (the most any one replica saw), or None."""
    rows = list(session.scalars(select(CanaryKeyCount).where(
        CanaryKeyCount.rollout_id == rollout.id, CanaryKeyCount.updated_at >= rollout.stage_started_at)))  # fmt: skip
    if not rows:
        return None
    return {"keys_seen": max(r.keys_seen for r in rows), "keys_in_canary": max(r.keys_in_canary for r in rows),
            "replicas": len(rows)}  # fmt: skip


def compare_canary(
    session: Session, rollout: Rollout, plan: RolloutPlan, now: datetime, labels: LabelLookup
) -> dict[str, Any]:
    """This step's candidate vs production for guardrails; the whole canary so far for the accuracy test."""
    step_since, stage_since = rollout.step_started_at, rollout.stage_started_at

    def arm(version_id: int, route: str, since: datetime) -> Window:
        return window(session, version_id, start=since, end=now, route=route, last_n=plan.max_window)

    candidate_step = arm(rollout.candidate_version_id, "canary", step_since)
    production_step = arm(rollout.baseline_version_id, "production", step_since)
    candidate_all = arm(rollout.candidate_version_id, "canary", stage_since)
    production_all = arm(rollout.baseline_version_id, "production", stage_since)
    errors = (
        _errors(session, rollout.baseline_version_id, "production", step_since, now),
        _errors(session, rollout.candidate_version_id, "canary", step_since, now),
    )
    correct = (_correctness(session, production_all, labels), _correctness(session, candidate_all, labels))
    step_differences = differences(production_step, candidate_step, errors, correct)
    # Accuracy is judged over the whole canary (as the SPRT is); the other rows over this step.
    return {
        "stage": "canary",
        "step": rollout.step,
        "share": plan.canary_steps[min(rollout.step, len(plan.canary_steps) - 1)],
        "since": step_since.isoformat(),
        "candidate": arm_summary(candidate_step, errors[1]),
        "production": arm_summary(production_step, errors[0]),
        "agreement": None,
        "client_keys": client_keys(session, rollout),
        "confidence": confidence_shift(production_step.confidence, candidate_step.confidence),
        "accuracy": sprt_accuracy(correct[1], correct[0], plan).to_dict(),
        "differences": step_differences,
    }
