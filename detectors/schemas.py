"""Pydantic shapes at the edges: alerts (API and webhook payloads share one), configs, references, runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_MISSING: Any = ...

# One description per field name, shared by the models below (the same field means the same thing in each).
DESCRIPTIONS = {
    "id": "this record's id",
    "model": "registered model name",
    "version": "the model's version",
    "model_version_id": "id of the model version",
    "config_id": "id of the detector config (``shiftwatch detectors list``)",
    "detector": "detector method, e.g. auto, mmd, ks_features, bbsd, accuracy_drop (docs/detectors.md lists them)",
    "name": "the config's name; defaults to the detector's",
    "params": "the detector's own constructor arguments, e.g. {\"n_permutations\": 200}",
    "input": "what the detector reads: embeddings | probabilities | confidence | correctness (the window's uniform labels; labeled_accuracy) (default: what the detector expects)",
    "window_last_n": "test the newest N production predictions (give this or window_minutes)",
    "window_minutes": "test the production predictions of the last N minutes (give this or window_last_n)",
    "schedule_seconds": "run at most this often; a tick with no new predictions writes nothing",
    "alpha": "significance level per run, before Holm across this version's detectors",
    "min_effect": "explicit practical threshold in the detector's unit; null: drift unless negligible at this window size",
    "confirm_runs": "flagged runs in a row, each on new samples, before an alert opens",
    "enabled": "false: the scheduler skips this config",
    "state": "open | acknowledged | resolved",
    "severity": "low | medium | high, from the estimated harm (none | negligible on runs below the threshold)",
    "title": "one line for lists and notifications",
    "p_value": "the detector's p-value (on alerts: after Holm across the version's detectors)",
    "statistic": "the detector's test statistic (accuracy_drop: the estimated accuracy, 0..1)",
    "adjusted_p_value": "p-value after Holm across the version's detectors at this tick",
    "threshold": "the detector's own decision threshold",
    "detector_drift": "the detector's own verdict, before Holm and the effect threshold",
    "effect_size": "how far the window moved, in effect_unit",
    "effect_unit": "unit of effect_size, e.g. '% of reference kernel spread'",
    "estimated_harm": "points lost (positive = worse): an accuracy drop, or the mean-confidence drop where "
    "harm_source is confidence_drop; the alert list's rank",
    "harm_source": "what measured the harm: labeled (prediction-powered, random-slice labels) | accuracy_estimate "
    "(label-free: CBPE with its reliability check, or an accuracy_drop detector; harm.reliable says whether the "
    "check passed) | confidence_drop (mean confidence, not an accuracy)",
    "harm": "the harm in full: points, source, method, 95 % interval (or the note saying why none), the accuracy "
    "and the reference's, and one sentence saying it",
    "run_count": "runs that flagged this alert so far",
    "first_run_id": "the run that opened it",
    "last_run_id": "the latest run that flagged it",
    "opened_at": "when it opened (UTC)",
    "updated_at": "when a run last updated it (UTC)",
    "acknowledged_at": "when a person acknowledged it",
    "acknowledged_by": "who acknowledged it",
    "resolved_at": "when it was resolved",
    "resolved_by": "who resolved it",
    "report_url": "the Evidently HTML report in the API, when one was written",
    "evidence": "the detector's evidence: atypical_samples, shifted_dimensions, per-test p-values, ...",
    "tick": "the scheduler tick (UTC) this run belongs to",
    "status": "ok; skipped (why in note); or failed (the detector raised; the error in note, in one line)",
    "note": "why a run was skipped or what limited it",
    "window_start": "time of the oldest prediction tested",
    "window_end": "time of the newest prediction tested (or the window's end)",
    "n_reference": "reference samples the detector compared against",
    "n_current": "production samples tested",
    "duration_ms": "how long the test took",
    "source": "time_range (pinned production traffic) | upload (arrays sent by the user) | "
    "rollout (the version's own shadow and canary predictions, pinned when its rollout promoted it)",
    "start": "start of the pinned time range (timezone-aware)",
    "end": "end of the pinned time range (timezone-aware)",
    "n": "samples in the reference",
    "embedding_dim": "embedding width, when embeddings were pinned",
    "num_classes": "number of classes, when probabilities were pinned",
    "has_labels": "whether the reference carries labels (accuracy_drop needs them)",
    "fingerprint": "hash of the reference's arrays; fitted detector states are tied to it",
    "created_at": "when it was created (UTC)",
}


def described(name: str, default: Any = _MISSING, **kwargs: Any) -> Any:
    """A Field with the shared description of ``name``."""
    return Field(default, description=DESCRIPTIONS[name], **kwargs)



class AlertOut(BaseModel):
    """An alert as people and webhooks see it: what moved, how much, how much it likely hurts, where to look."""

    id: int = described("id")
    model: str = described("model")
    version: str = described("version")
    model_version_id: int = described("model_version_id")
    config_id: int = described("config_id")
    detector: str = described("detector")
    state: str = described("state")
    severity: str = described("severity")
    title: str = described("title")
    p_value: float | None = described("p_value")
    effect_size: float = described("effect_size")
    effect_unit: str = described("effect_unit")
    estimated_harm: float | None = described("estimated_harm")
    harm_source: str | None = described("harm_source")
    harm: dict[str, Any] | None = described("harm", None)
    run_count: int = described("run_count")
    first_run_id: int = described("first_run_id")
    last_run_id: int = described("last_run_id")
    opened_at: datetime = described("opened_at")
    updated_at: datetime = described("updated_at")
    acknowledged_at: datetime | None = described("acknowledged_at")
    acknowledged_by: str | None = described("acknowledged_by")
    resolved_at: datetime | None = described("resolved_at")
    resolved_by: str | None = described("resolved_by")
    resolution: str | None = Field(
        None, description="why it was resolved when no person did it: the promotion that retired its version, with a link"
    )
    url: str = Field(description="this alert in the API (JSON; needs a token when auth is on)")
    report_url: str | None = described("report_url")
    console_url: str = Field(description="the console's alert page: what a person opens in a browser")
    console_report_url: str | None = Field(None, description="the Evidently report through the console")
    evidence: dict[str, Any] = described("evidence")


class DetectorConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = described("model")
    version: str = described("version")
    detector: str = described("detector", "auto")  # the omnibus test (MMD over 5 bandwidths + per-feature KS) on embeddings
    name: str | None = described("name", None)
    params: dict[str, Any] = Field(default_factory=dict, description=DESCRIPTIONS["params"])
    input: str | None = described("input", None)
    window_last_n: int | None = described("window_last_n", None)
    window_minutes: int | None = described("window_minutes", None)
    schedule_seconds: int = described("schedule_seconds", 300)
    alpha: float = described("alpha", 0.05)
    # None: drift unless negligible at this window size (detectors/effect.py)
    min_effect: float | None = described("min_effect", None)
    confirm_runs: int = described("confirm_runs", 2)
    enabled: bool = described("enabled", True)


class DetectorConfigPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] | None = described("params", None)
    window_last_n: int | None = described("window_last_n", None)
    window_minutes: int | None = described("window_minutes", None)
    schedule_seconds: int | None = described("schedule_seconds", None)
    alpha: float | None = described("alpha", None)
    min_effect: float | None = described("min_effect", None)
    confirm_runs: int | None = described("confirm_runs", None)
    enabled: bool | None = described("enabled", None)


class DetectorConfigOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = described("id")
    model_version_id: int = described("model_version_id")
    name: str = described("name")
    detector: str = described("detector")
    params: dict[str, Any] = described("params")
    input: str = described("input")
    window_last_n: int | None = described("window_last_n")
    window_minutes: int | None = described("window_minutes")
    schedule_seconds: int = described("schedule_seconds")
    alpha: float = described("alpha")
    min_effect: float | None = described("min_effect")
    confirm_runs: int = described("confirm_runs")
    enabled: bool = described("enabled")
    checked_at: datetime | None = Field(None, description="the last tick that found no new data (no run written)")
    check_note: str | None = Field(None, description='why that tick tested nothing, e.g. "no new data since run 17"')


class ReferenceRangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime = described("start")
    end: AwareDatetime = described("end")


class ReferenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    model_version_id: int = described("model_version_id")
    source: str = described("source")
    start: datetime | None = described("start")
    end: datetime | None = described("end")
    n: int = described("n")
    embedding_dim: int | None = described("embedding_dim")
    num_classes: int | None = described("num_classes")
    has_labels: bool = described("has_labels")
    fingerprint: str = described("fingerprint")
    created_at: datetime = described("created_at")


class DriftRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = described("id")
    config_id: int = described("config_id")
    model_version_id: int = described("model_version_id")
    detector: str = described("detector")
    tick: datetime = described("tick")
    status: str = described("status")
    note: str | None = described("note")
    statistic: float | None = described("statistic")
    p_value: float | None = described("p_value")
    adjusted_p_value: float | None = described("adjusted_p_value")
    threshold: float | None = described("threshold")
    detector_drift: bool | None = described("detector_drift")
    significant: bool | None = Field(None, description="significant at alpha before Holm (the detector's test)")
    decision: bool = Field(description="drift: significant after Holm AND not negligible (the page decision)")
    severity: str | None = Field(None, description="none | negligible | low | medium | high: the shift's size")
    effect_size: float | None = described("effect_size")
    effect_unit: str | None = described("effect_unit")
    estimated_harm: float | None = described("estimated_harm")
    window_start: datetime | None = described("window_start")
    window_end: datetime | None = described("window_end")
    n_reference: int = described("n_reference")
    n_current: int = described("n_current")
    duration_ms: float = described("duration_ms")


class QuietCheckOut(BaseModel):
    config_id: int = described("config_id")
    name: str = described("name")
    note: str = Field(description='why nothing was tested, e.g. "no new data since run 17"')


class CheckOut(BaseModel):
    """What an on-demand check did: the runs it wrote, the configs with nothing new, the alerts it touched."""

    model: str = described("model")
    version: str = described("version")
    runs: list[DriftRunOut] = Field(description="runs written by this check (none for a config with no new data)")
    quiet: list[QuietCheckOut] = Field(description="configs not tested: no prediction since their last run")
    opened: list[int] = Field(description="ids of alerts this check opened")
    updated: list[int] = Field(description="ids of open alerts this check updated")
