"""What the console's alert page says: what drifted in words, the accuracy estimate with its method, the history as a plot.

Issue 17: the page listed "embedding dimensions 30, 28, 22" and "est. accuracy -50.3 pts"
(read as an accuracy of -50). It now says what moved and how much it likely costs, shows the
atypical inputs beside reference inputs with their predicted classes, plots the detector's
statistic and the estimated accuracy beside the realized one over time (on SQLite too, where Grafana cannot go), and
points at the next step: the labeling queue that already holds the flagged samples.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiftwatch.collector.tables import Model, ModelVersion, Prediction
from shiftwatch.console import accuracy_plot, svg
from shiftwatch.detectors import harm
from shiftwatch.detectors.schemas import AlertOut
from shiftwatch.detectors.tables import DriftRun, ReferenceWindow

HISTORY_RUNS = 500  # the newest runs of the config plotted
EXAMPLES = 6  # reference inputs shown beside the atypical ones
SEVERITY_MEANING = {
    "low": "the inputs moved, but the model's outputs barely did: worth a look, not an emergency",
    "medium": "the model is likely a few points less accurate on these inputs",
    "high": "the model is likely much less accurate on these inputs: act now",
}


@dataclass(frozen=True, slots=True)
class Example:
    input_ref: str
    predicted: str
    confidence: float
    score: float | None = None


@dataclass(frozen=True, slots=True)
class AlertView:
    summary: list[str]  # sentences, in reading order
    accuracy: str  # the estimate, its interval and its method, or why there is none
    atypical: list[Example]
    reference: list[Example]
    history_svg: str | None
    accuracy_svg: str | None  # estimated vs realized accuracy per tested window
    accuracy_caption: str | None


def _class_name(names: list[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def _summary(alert: AlertOut) -> list[str]:
    lines = [
        f"The {alert.detector} detector found the production inputs of {alert.model} {alert.version} unlike its "
        f"reference: effect {alert.effect_size:.3g} {alert.effect_unit}"
        + ("." if alert.p_value is None else f", p = {alert.p_value:.2g} after Holm across this version's detectors.")
    ]
    others = [d for key, d in (alert.evidence.get("detectors") or {}).items() if key != str(alert.config_id)]
    if others:  # one alert per drift episode: the other detectors that fired on it, each with its own numbers
        lines.append("Also fired on this drift episode: " + "; ".join(
            f"{d['name']} (effect {float(d['effect_size']):.3g} {d['effect_unit']}"
            + ("" if d.get("p_value") is None else f", p = {float(d['p_value']):.2g}") + ")" for d in others) + ".")
    shifted = alert.evidence.get("shifted_dimensions") or []
    if shifted:
        sizes = sorted(abs(float(d["shift_in_std"])) for d in shifted)
        lines.append(
            f"The images' embeddings moved: the {len(shifted)} most changed directions shifted by "
            f"{sizes[0]:.2f} to {sizes[-1]:.2f} reference standard deviations (a change in what the camera sees, "
            "not only in the model's answers)."
        )
    lines.append(f"Severity {alert.severity}: {SEVERITY_MEANING.get(alert.severity, '')}.")
    return lines


def _accuracy(alert: AlertOut) -> str:
    """The harm in words, named for what it measured, with its interval or why it has none (issue 24)."""
    stored = harm.from_dict(alert.harm)
    if stored is not None:
        sentence = stored.sentence()
        return sentence[0].upper() + sentence[1:] + "."
    if alert.estimated_harm is None:
        return "No accuracy estimate: the version has no reference confidence, accuracy estimator or labels."
    return (f"Harm score {alert.estimated_harm:.1f} points by {alert.harm_source or 'an unknown method'} "
            "(stored before alerts kept the method and interval).")


def _examples(session: Session, alert: AlertOut, names: list[str]) -> tuple[list[Example], list[Example]]:
    samples = [s for s in alert.evidence.get("atypical_samples") or [] if s.get("input_ref")][:12]
    ids = [uuid.UUID(s["prediction_id"]) for s in samples]
    stmt = select(Prediction.id, Prediction.predicted_class, Prediction.confidence).where(Prediction.id.in_(ids))
    rows = {str(r.id): r for r in session.execute(stmt)} if ids else {}
    atypical = []
    for sample in samples:
        row = rows.get(sample["prediction_id"])  # gone once retention dropped its partition
        atypical.append(
            Example(
                input_ref=sample["input_ref"],
                predicted="?" if row is None else _class_name(names, row.predicted_class),
                confidence=float("nan") if row is None else float(row.confidence),
                score=float(sample.get("score", 0.0)),
            )
        )
    reference: list[Example] = []
    pinned = session.scalar(select(ReferenceWindow).where(ReferenceWindow.model_version_id == alert.model_version_id))
    if pinned is not None and pinned.start is not None and pinned.end is not None:
        in_reference = (
            select(Prediction.input_ref, Prediction.predicted_class, Prediction.confidence)
            .where(
                Prediction.model_version_id == alert.model_version_id,
                Prediction.ts >= pinned.start,
                Prediction.ts < pinned.end,
                Prediction.input_ref.is_not(None),
            )
            .order_by(Prediction.ts)
            .limit(EXAMPLES)
        )
        reference = [
            Example(r.input_ref, _class_name(names, r.predicted_class), float(r.confidence))
            for r in session.execute(in_reference)
        ]
    return atypical, reference


def _hours(ticks: list[datetime], origin: datetime) -> list[float]:
    return [(t - origin).total_seconds() / 3600 for t in ticks]


def _history(session: Session, alert: AlertOut) -> tuple[str | None, str | None, str | None]:
    runs = list(
        session.scalars(
            select(DriftRun)
            .where(DriftRun.config_id == alert.config_id, DriftRun.status == "ok")
            .order_by(DriftRun.tick.desc())
            .limit(HISTORY_RUNS)
        )
    )[::-1]
    if len(runs) < 2:  # one point draws no line
        return None, None, None
    origin = runs[0].tick
    x_label = f"hours since {origin:%Y-%m-%d %H:%M} UTC"
    first = session.get(DriftRun, alert.first_run_id)  # the run that opened it, on the runs' own clock
    opened_at = first.tick if first is not None else alert.opened_at
    opened = svg.Marker(x=(opened_at - origin).total_seconds() / 3600, label="alert opened")
    hours = _hours([r.tick for r in runs], origin)
    effect = svg.line_chart(
        [svg.Series("effect size", hours, [r.effect_size or 0.0 for r in runs])],
        title=f"{alert.detector}: effect size per run", x_label=x_label, y_label=alert.effect_unit or "effect",
        markers=[opened],
    )
    estimated = accuracy_plot.history(session, alert.model_version_id, runs, origin, (alert.evidence or {}).get("harm_history"))
    accuracy = None if estimated is None else accuracy_plot.chart(estimated, origin, x_label, [opened])
    caption = None if estimated is None else accuracy_plot.caption(estimated)
    return effect, accuracy, caption


def build(session: Session, alert: AlertOut) -> AlertView:
    version = session.get(ModelVersion, alert.model_version_id)
    model = session.get(Model, version.model_id) if version is not None else None
    names = list(model.class_names) if model is not None else []
    atypical, reference = _examples(session, alert, names)
    history, accuracy_svg, accuracy_caption = _history(session, alert)
    return AlertView(
        summary=_summary(alert),
        accuracy=_accuracy(alert),
        atypical=atypical,
        reference=reference,
        history_svg=history,
        accuracy_svg=accuracy_svg,
        accuracy_caption=accuracy_caption,
    )
