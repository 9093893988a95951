"""A budget search's candidates as plots: accuracy against latency and against size, the budget as a line.

Each plot draws its own two-dimensional Pareto front (the most accurate candidate at each
latency, or size, or less): the recipe a person would pick if only that axis mattered.
"""

from __future__ import annotations

from typing import Any

from shiftwatch.console import svg

AXES = (("latency_ms", "ms", "latency at the budget's batch size (ms)"), ("size_mb", "MB", "artifact size (MB)"))


def front(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The rows no other row beats on both accuracy and ``key`` (smaller is better), in ``key`` order."""
    kept: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r[key], -r["accuracy"])):
        if not kept or row["accuracy"] > kept[-1]["accuracy"]:
            kept.append(row)
    return kept


def charts(found: dict[str, Any]) -> list[str]:
    """Two inline SVG scatter plots of ``budget_search`` (a report's ``as_dict``); [] when nothing was measured."""
    rows, budget = found.get("candidates") or [], found.get("budget") or {}
    if not rows:
        return []
    out = []
    for key, unit, axis in AXES:
        series = []
        for name, group in (("within budget", [r for r in rows if r["fits"]]), ("over budget", [r for r in rows if not r["fits"]])):
            if group:
                series.append(svg.Series(name, [r[key] for r in group], [r["accuracy"] for r in group], dots=True,
                                         labels=[r["recipe"] + (" (chosen)" if r["recipe"] == found.get("chosen") else "")
                                                 for r in group]))  # fmt: skip
        line = front(rows, key)
        series.append(svg.Series("Pareto front", [r[key] for r in line], [r["accuracy"] for r in line]))
        limit = budget.get(key)
        markers = [svg.Marker(float(limit), f"budget: {limit:g} {unit}")] if limit else []
        out.append(svg.line_chart(series, title=f"Accuracy against {axis.split(' (')[0].split(' at')[0]}", x_label=axis,
                                  y_label="accuracy", markers=markers))  # fmt: skip
    return out
