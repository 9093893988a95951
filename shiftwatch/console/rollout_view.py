"""What the rollout page plots: confidence and latency distributions of production vs candidate since the stage began."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shiftwatch.collector import registry
from shiftwatch.collector.queries import window
from shiftwatch.console.svg import histograms

# Enough points for a stable histogram, few enough to render a page in well under a second.
MAX_POINTS = 5000


def distribution_plots(session: Session, rollout) -> list[str]:
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


def _kb(size: object) -> str:
    return f"{size / 1024:.0f} KB" if isinstance(size, int | float) else "-"


def _points(value: object) -> str:
    return f"{value:.2%}" if isinstance(value, int | float) else "-"


def candidate_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The candidate's own report (retrain's ``model_versions.report``) as rows a person reads; {} when absent."""
    if not report:
        return {}
    gate = report.get("gate") or {}
    rows = []
    for key, where in (("accuracy_old", "held-out reference data (old distribution)"),
                       ("accuracy_new", "labeled recent data (new distribution)")):
        pair = gate.get(key) or {}
        production, candidate = pair.get("production"), pair.get("candidate", report.get(key))
        if production is None and candidate is None:
            continue
        change = (f" ({(candidate - production) * 100:+.2f} points)"
                  if isinstance(production, int | float) and isinstance(candidate, int | float) else "")
        rows.append((f"accuracy on {where}", f"production {_points(production)}, candidate {_points(candidate)}{change}"))
    if (found := report.get("budget_search")) and found.get("chosen"):
        budget = found["budget"]
        limits = ", ".join(f"{name} {budget[key]:g}" for key, name in (("latency_ms", "latency ms"), ("size_mb", "size MB"))
                           if budget.get(key))  # fmt: skip
        rows.append(("chosen under budget", f"{found['chosen']} of {len(found['candidates'])} recipes measured "
                                            f"({limits}; {budget['provider']}, batch {budget['batch']})"))  # fmt: skip
    if "size_bytes" in report:
        rows.append(("artifact size", f"{_kb(report['size_bytes'])} (fp32 ONNX {_kb(report.get('size_bytes_fp32_onnx'))})"))
    for batch, timing in (report.get("latency_ms") or {}).items():
        rows.append((f"latency {batch} (1 CPU thread)", f"p50 {timing.get('p50_ms', '-')} ms, p99 {timing.get('p99_ms', '-')} ms"))
    if "compression_steps" in report:
        rows.append(("compression steps", ", ".join(report["compression_steps"]) or "none"))
    for name in ("parity", "quantized_parity"):
        parity = report.get(name)
        if parity:
            verdict = "ok" if parity.get("ok") else "FAILED"
            rows.append((name.replace("_", " "), f"{verdict}: top-1 agreement {parity.get('top1_agreement', 0):.4f} "
                         f"on {parity.get('samples', '?')} inputs, max |logit diff| {parity.get('max_abs_logit_diff', 0):.3g}"))
    quantization = (report.get("compression") or {}).get("quantization") or {}
    return {"rows": rows, "quantization": quantization.get("attempts") or [], "outcome": quantization.get("outcome"),
            "gate": gate.get("reasons") or [], "gate_passed": gate.get("passed")}
