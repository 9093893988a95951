"""The demo's ending: a summary table in the terminal and a self-contained HTML page with inline SVG plots."""

from __future__ import annotations

from html import escape
from pathlib import Path

from rich.table import Table

from shiftwatch.console.svg import Marker, Series, line_chart
from shiftwatch.demo.api import DemoApiError
from shiftwatch.demo.stage import Stage

LAP_PHASES = (("drift", "during drift"), ("rollout", "shadow + canary"), ("recovered", "after promotion"))


def phases(laps: int) -> list[tuple[str, str]]:
    """(phase, label) of every phase the story may record: clean traffic, then each lap's three."""
    found = [("clean", "before drift")]
    for lap in range(1, laps + 1):
        found += [(phase if lap == 1 else f"{phase}_{lap}", label if lap == 1 else f"{label} (lap {lap})")
                  for phase, label in LAP_PHASES]
    return found


def phase_rows(stage: Stage) -> list[tuple[str, str]]:
    rows = []
    for phase, label in phases(stage.laps):
        accuracy = stage.timeline.accuracy(phase)
        if accuracy is not None:
            rows.append((label, f"{accuracy:.1%}"))
    return rows


def rollout_sections(stage: Stage, rollout_id: int | None) -> list[tuple[str, str]]:
    """The rollout's comparison report (GET /v1/rollouts/{id}/report), saved beside the summary and linked."""
    if rollout_id is None or stage.server is None:
        return []
    try:
        report = stage.api.get(f"/v1/rollouts/{rollout_id}/report")
    except DemoApiError:
        return []
    path = stage.out_dir / f"rollout-{rollout_id}.html"
    path.write_text(str(report), encoding="utf-8")
    link = f'<p><a href="{escape(path.name)}">Rollout #{rollout_id}: production vs candidate</a> (confidence and class distributions, Evidently)</p>'
    return [(f"Rollout #{rollout_id}", link)]


def provenance(sources: dict[str, int]) -> str:
    """One sentence on where the labels came from; the built-in oracle answers from the demo's ground truth."""
    if not sources:
        return "No labels were stored."
    oracle = sources.get("oracle", 0)
    others = ", ".join(f"{n} from {source}" for source, n in sources.items() if source != "oracle")
    text = (f"{oracle} of the {sum(sources.values())} labels came from the built-in oracle, which answers from the "
            "demo's own ground truth (no person labeled them) and sends them in as a labels file "
            "(shiftwatch labeling import); in production people label in Label Studio.")
    return text + (f" Also: {others}." if others else "")


def print_summary(stage: Stage) -> None:
    table = Table(title="What happened")
    table.add_column("")
    table.add_column("value")
    for label, value in phase_rows(stage):
        table.add_row(f"production accuracy {label}", value)
    for key, fact in stage.facts.items():
        table.add_row(key.replace("_", " "), str(fact))
    for piece in stage.missing:
        table.add_row("[yellow]not in this build[/]", piece)
    stage.console.print(table)
    stage.console.print(provenance(dict(stage.labels_by_annotator)))


def accuracy_chart(stage: Stage) -> str:
    points = stage.timeline.points
    series = [Series("production accuracy", [p.step for p in points], [p.accuracy for p in points])]
    markers = [Marker(event.step, event.label) for event in stage.timeline.events]
    return line_chart(series, title="Production accuracy over the stream", x_label="requests served",
                      y_label="accuracy", markers=markers, y_range=(0.0, 1.0))


def write_html(stage: Stage, extra_sections: list[tuple[str, str]]) -> Path:
    """Write ``summary.html`` into the demo's output folder; ``extra_sections`` are (title, trusted HTML)."""
    facts = "".join(
        f"<tr><th>{escape(k.replace('_', ' '))}</th><td>{escape(str(v))}</td></tr>" for k, v in stage.facts.items()
    )
    phases = "".join(f"<tr><th>accuracy {escape(label)}</th><td>{value}</td></tr>" for label, value in phase_rows(stage))
    missing = "".join(f"<li>{escape(piece)}</li>" for piece in stage.missing)
    # Numbered as on the chart's markers.
    events = "".join(f"<li>request {e.step}: {escape(e.label)}</li>" for e in stage.timeline.events)
    labels = escape(provenance(dict(stage.labels_by_annotator)))
    sections = "".join(f"<h2>{escape(title)}</h2>{body}" for title, body in extra_sections)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shiftwatch demo summary</title>
<style>body{{font-family:sans-serif;max-width:760px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{text-align:left;padding:2px 12px 2px 0}}.missing{{color:#a60}}</style>
</head><body>
<h1>shiftwatch demo: drift to a promoted model</h1>
{accuracy_chart(stage)}
<h2>Events</h2><ol>{events}</ol>
<h2>Numbers</h2><table>{phases}{facts}</table>
<p id="label-source">{labels}</p>
{f'<h2 class="missing">Not in this build</h2><ul class="missing">{missing}</ul>' if missing else ''}
{sections}
</body></html>
"""
    path = stage.out_dir / "summary.html"
    path.write_text(page, encoding="utf-8")
    return path
