"""What the rollout page plots: confidence and latency distributions of production vs candidate since the stage began."""

from __future__ import annotations

from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.queries import window
from shiftwatch.console.svg import histograms

# Enough points for a stable histogram, few enough to render a page in well under a second.
MAX_POINTS = 5000


def distribution_plots(session: Session, rollout) -> list[str]:  # type: ignore[no-untyped-def]
    """Inline SVG histograms (confidence, latency) of the production and candidate arms of a rollout."""
    if rollout.state not in ("shadow", "canary", "production", "rolled_back", "rejected"):
        return []
    baseline = registry.get_version(session, rollout.model, rollout.baseline_version)
    candidate = registry.get_version(session, rollout.model, rollout.candidate_version)
    since = rollout.created_at
    production = window(session, baseline.id, start=since, route="production", last_n=MAX_POINTS)
    arms = {f"{rollout.baseline_version} production": production}
    for route in ("shadow", "canary"):
        rows = window(session, candidate.id, start=since, route=route, last_n=MAX_POINTS)
        if len(rows):
            arms[f"{rollout.candidate_version} {route}"] = rows
    if not any(len(rows) for rows in arms.values()):
        return []
    return [
        histograms({name: rows.confidence for name, rows in arms.items()},
                   title="Confidence distribution", x_label="top-class confidence"),
        histograms({name: rows.latency_ms for name, rows in arms.items()},
                   title="Latency distribution", x_label="model latency (ms)"),
    ]
