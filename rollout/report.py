"""The Evidently report shown to the approver: candidate vs production outputs over the canary so far."""

from __future__ import annotations

from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from shiftwatch.collector.queries import Window, window
from shiftwatch.errors import Conflict
from shiftwatch.extras import require_extra
from shiftwatch.rollout.evidence import fmt
from shiftwatch.rollout.schemas import RolloutPlan
from shiftwatch.rollout.tables import Rollout

if TYPE_CHECKING:
    import pandas as pd


def outputs_frame(rows: Window) -> pd.DataFrame:
    frame = require_extra("pandas").DataFrame({"confidence": rows.confidence, "predicted_class": rows.predicted_class.astype(str)})
    if rows.probabilities is not None:
        for k in range(rows.probabilities.shape[1]):
            frame[f"p_{k}"] = rows.probabilities[:, k]
    return frame


def write_report(session: Session, data_dir: Path, rollout: Rollout, now: datetime) -> Path:
    """Evidently's data-drift preset on the outputs (confidence, class, per-class probabilities); returns the HTML path."""
    require_extra("evidently")  # the [reports] extra
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
    path = data_dir / "reports" / f"rollout-{rollout.id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def comparison_rows(metrics: dict) -> list[tuple[str, str, str]]:
    """The comparison table a person reads: (metric, production, candidate)."""
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


# Evidently's preset calls any difference "drift" in red; between a retrained candidate and production a
# difference is the point, so the page says what it is before Evidently's own header.
COMPARISON_BANNER = (
    '<div id="shiftwatch-comparison-note" style="font-family:sans-serif;background:#eef4ff;color:#1d2330;'
    'padding:0.8em 1.2em;border-bottom:1px solid #b8c8e6">'
    "<strong>Comparison of candidate and production outputs, not an alarm.</strong> "
    "Evidently's data-drift preset labels every difference as &quot;drift&quot;; a retrained candidate is "
    "meant to answer differently where production was wrong. Judge the candidate by the guardrails and the "
    "accuracy test on the rollout page; read this to see <em>where</em> the outputs differ "
    "(current = candidate, reference = production).{back}</div>"
)
# Evidently's wording, reframed where it appears as plain text.
REWORDED = {"Dataset Drift is detected": "Outputs differ", "Dataset Drift is NOT detected": "Outputs match",
            "Drift is detected for": "Outputs differ for"}


def framed_as_comparison(html: str, back_url: str = "") -> str:
    """Evidently's report HTML with the banner above it and its alarm wording turned into a comparison."""
    for alarm, plain in REWORDED.items():
        html = html.replace(alarm, plain)
    back = f' <a id="back-to-rollout" href="{escape(back_url)}">Back to the rollout page</a>' if back_url else ""
    banner = COMPARISON_BANNER.format(back=back)
    head, marker, tail = html.partition("<body>")
    return head + marker + banner + tail if marker else banner + html
