"""The Evidently report shown to the approver: candidate vs production outputs over the canary so far."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from shiftwatch.collector.queries import Window, window
from shiftwatch.errors import Conflict
from shiftwatch.rollout.models import Rollout
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.settings import Settings


def outputs_frame(rows: Window) -> pd.DataFrame:
    frame = pd.DataFrame({"confidence": rows.confidence, "predicted_class": rows.predicted_class.astype(str)})
    if rows.probabilities is not None:
        for k in range(rows.probabilities.shape[1]):
            frame[f"p_{k}"] = rows.probabilities[:, k]
    return frame


def write_report(session: Session, settings: Settings, rollout: Rollout, now: datetime) -> Path:
    """Evidently's data-drift preset on the outputs (confidence, class, per-class probabilities); returns the HTML path."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    plan = RolloutPlan.model_validate(rollout.plan)
    candidate_route = "shadow" if rollout.state == "shadow" else "canary"
    since = rollout.stage_started_at if rollout.state in ("shadow", "canary") else None
    reference = outputs_frame(
        window(session, rollout.baseline_version_id, start=since, end=now, route="production", last_n=plan.max_window)
    )
    current = outputs_frame(
        window(session, rollout.candidate_version_id, start=since, end=now, route=candidate_route, last_n=plan.max_window)
    )
    if len(reference) < 2 or len(current) < 2:
        raise Conflict(f"rollout {rollout.id} has too few predictions for a report ({len(current)} candidate)")
    shared = [c for c in reference.columns if c in current.columns]
    definition = DataDefinition(
        numerical_columns=[c for c in shared if c != "predicted_class"], categorical_columns=["predicted_class"]
    )
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current[shared], data_definition=definition),
        Dataset.from_pandas(reference[shared], data_definition=definition),
    )
    path = settings.data_dir / "reports" / f"rollout-{rollout.id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def comparison_rows(metrics: dict) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    """The comparison table a person reads: (metric, production, candidate)."""

    def fmt(value: object, digits: int = 3) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    cand, prod, acc = metrics["candidate"], metrics["production"], metrics["accuracy"]
    rows = [
        ("predictions", fmt(prod["n"]), fmt(cand["n"])),
        ("errors", fmt(prod["errors"]), fmt(cand["errors"])),
        ("mean confidence", fmt(prod["mean_confidence"]), fmt(cand["mean_confidence"])),
        ("latency p50 ms", fmt(prod["latency_p50_ms"], 2), fmt(cand["latency_p50_ms"], 2)),
        ("latency p99 ms", fmt(prod["latency_p99_ms"], 2), fmt(cand["latency_p99_ms"], 2)),
        ("labeled samples", fmt(acc["n_production"]), fmt(acc["n_candidate"])),
        ("accuracy (labeled)", fmt(acc["accuracy_production"]), fmt(acc["accuracy_candidate"])),
    ]
    if metrics.get("agreement"):
        rows.append(("agreement", "", fmt(metrics["agreement"]["rate"])))
    shift = metrics["confidence"]
    rows.append(("confidence KS p", "", fmt(shift["ks_p_value"], 4)))
    rows.append(("accuracy SPRT", f"LLR {fmt(acc['llr'], 2)}", f"{acc['decision']} (bounds {acc['lower']:.2f}/{acc['upper']:.2f})"))
    return rows



