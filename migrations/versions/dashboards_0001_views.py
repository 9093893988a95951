"""Grafana's read model: sw_* SQL views over the collector, detector, labeling and rollout tables.

Revision ID: dashboards_0001
Depends on: the first revision of every branch whose tables the views read.

The dashboards in ``dashboards/*.json`` query only these views, so a table can change
shape without breaking a dashboard as long as its view keeps its columns. Views are not ORM
tables: the ORM/migration comparison does not see them. PostgreSQL only (Grafana's data
source); on the embedded SQLite store there is nothing to graph and nothing is created.

Every view has a ``time`` column (UTC) for Grafana's ``$__timeFilter`` and a ``model`` and
``version`` column for the ``$model`` variable and per-version series.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "dashboards_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("dashboards",)
depends_on: str | Sequence[str] | None = ("collector_0001", "detectors_0001", "labeling_0001", "rollout_0001")

VERSION_JOIN = "JOIN model_versions v ON v.id = {alias}.model_version_id JOIN models m ON m.id = v.model_id"

VIEWS: dict[str, str] = {
    # Predictions stored per minute, by version and route, with mean confidence and latency.
    "sw_ingest_per_minute": f"""
        SELECT date_trunc('minute', p.ts) AS time, m.name AS model, v.version, p.route,
               count(*) AS predictions, avg(p.confidence) AS mean_confidence, avg(p.latency_ms) AS mean_latency_ms
        FROM predictions p {VERSION_JOIN.format(alias="p")}
        GROUP BY 1, 2, 3, 4""",
    # Every drift run: statistic, raw and Holm-adjusted p-value, decision, effect and estimated harm.
    "sw_drift_runs": f"""
        SELECT r.tick AS time, m.name AS model, v.version, c.name AS detector_config, r.detector, r.status,
               r.statistic, r.p_value, r.adjusted_p_value, r.threshold, r.decision, r.effect_size, r.effect_unit,
               r.estimated_harm, r.n_reference, r.n_current, r.duration_ms
        FROM drift_runs r JOIN detector_configs c ON c.id = r.config_id {VERSION_JOIN.format(alias="r")}""",
    # Alerts opened per minute, by detector, severity and current state.
    "sw_alerts_per_minute": f"""
        SELECT date_trunc('minute', a.opened_at) AS time, m.name AS model, v.version, a.detector, a.severity,
               a.state, count(*) AS alerts
        FROM alerts a {VERSION_JOIN.format(alias="a")}
        GROUP BY 1, 2, 3, 4, 5, 6""",
    # Label-free estimate: mean top-class confidence (a calibrated model's expected accuracy).
    "sw_estimated_accuracy": f"""
        SELECT date_trunc('minute', p.ts) AS time, m.name AS model, v.version, p.route,
               avg(p.confidence) AS estimated_accuracy, count(*) AS predictions
        FROM predictions p {VERSION_JOIN.format(alias="p")}
        GROUP BY 1, 2, 3, 4""",
    # Accuracy on labeled samples, by the prediction's minute and why the sample was queued:
    # only reason = 'random' is an unbiased estimate (the others were picked because they looked hard).
    "sw_labeled_accuracy": f"""
        SELECT date_trunc('minute', t.ts) AS time, m.name AS model, v.version, t.reason,
               avg(CASE WHEN l.label = t.predicted_class THEN 1.0 ELSE 0.0 END) AS labeled_accuracy,
               count(*) AS labeled
        FROM labels l JOIN label_tasks t ON t.id = l.task_id {VERSION_JOIN.format(alias="l")}
        GROUP BY 1, 2, 3, 4""",
    # One row per controller tick of a rollout: stage, step, decision.
    "sw_canary_comparisons": """
        SELECT c.computed_at AS time, m.name AS model, r.id AS rollout_id, cv.version AS candidate,
               bv.version AS baseline, c.stage, c.step, c.decision, r.state AS rollout_state
        FROM comparisons c JOIN rollouts r ON r.id = c.rollout_id JOIN models m ON m.id = r.model_id
        JOIN model_versions cv ON cv.id = r.candidate_version_id
        JOIN model_versions bv ON bv.id = r.baseline_version_id""",
    # The same ticks, long format: every number of the comparison as "<group>.<name>"
    # (candidate.latency_p99_ms, production.mean_confidence, accuracy.accuracy_candidate, ...).
    "sw_canary_metrics": """
        SELECT c.computed_at AS time, m.name AS model, r.id AS rollout_id, cv.version AS candidate,
               bv.version AS baseline, c.stage, c.step, grp.key || '.' || kv.key AS metric,
               (kv.value #>> '{}')::double precision AS value
        FROM comparisons c JOIN rollouts r ON r.id = c.rollout_id JOIN models m ON m.id = r.model_id
        JOIN model_versions cv ON cv.id = r.candidate_version_id
        JOIN model_versions bv ON bv.id = r.baseline_version_id
        CROSS JOIN LATERAL jsonb_each(c.metrics::jsonb) AS grp(key, value)
        CROSS JOIN LATERAL jsonb_each(
            CASE WHEN jsonb_typeof(grp.value) = 'object' THEN grp.value ELSE '{}'::jsonb END) AS kv(key, value)
        WHERE jsonb_typeof(kv.value) = 'number'""",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, query in VIEWS.items():
        op.execute(f"CREATE OR REPLACE VIEW {name} AS {query}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
