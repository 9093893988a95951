"""detectors: configs, reference windows, fitted state, drift runs, alerts, webhook deliveries, flagged samples

Revision ID: detectors_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shiftwatch.db

revision: str = "detectors_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("detectors",)
depends_on: str | Sequence[str] | None = "collector_0001"


def upgrade() -> None:
    op.create_table(
        "detector_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("detector", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("input", sa.String(length=20), nullable=False),
        sa.Column("window_last_n", sa.Integer(), nullable=True),
        sa.Column("window_minutes", sa.Integer(), nullable=True),
        sa.Column("schedule_seconds", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("min_effect", sa.Float(), nullable=False),
        sa.Column("confirm_runs", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("updated_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_detector_configs_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detector_configs")),
        sa.UniqueConstraint("model_version_id", "name", name="uq_detector_configs_model_version_id_name"),
    )
    op.create_index(
        op.f("ix_detector_configs_model_version_id"), "detector_configs", ["model_version_id"], unique=False
    )
    op.create_table(
        "reference_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("start", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.Column("end", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=True),
        sa.Column("num_classes", sa.Integer(), nullable=True),
        sa.Column("embeddings", sa.LargeBinary(), nullable=True),
        sa.Column("probabilities", sa.LargeBinary(), nullable=True),
        sa.Column("confidence", sa.LargeBinary(), nullable=False),
        sa.Column("predicted_class", sa.LargeBinary(), nullable=False),
        sa.Column("labels", sa.LargeBinary(), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_reference_windows_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_windows")),
        sa.UniqueConstraint("model_version_id", name=op.f("uq_reference_windows_model_version_id")),
    )
    op.create_table(
        "detector_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("fit_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("fitted_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["detector_configs.id"],
            name=op.f("fk_detector_states_config_id_detector_configs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detector_states")),
        sa.UniqueConstraint("config_id", name=op.f("uq_detector_states_config_id")),
    )
    op.create_table(
        "drift_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("detector", sa.String(length=100), nullable=False),
        sa.Column("tick", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("statistic", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("adjusted_p_value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("detector_drift", sa.Boolean(), nullable=True),
        sa.Column("decision", sa.Boolean(), nullable=False),
        sa.Column("effect_size", sa.Float(), nullable=True),
        sa.Column("effect_unit", sa.String(length=100), nullable=True),
        sa.Column("estimated_harm", sa.Float(), nullable=True),
        sa.Column("window_start", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.Column("window_end", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.Column("n_reference", sa.Integer(), nullable=False),
        sa.Column("n_current", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("created_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["detector_configs.id"],
            name=op.f("fk_drift_runs_config_id_detector_configs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_drift_runs_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_runs")),
        sa.UniqueConstraint("config_id", "tick", name="uq_drift_runs_config_id_tick"),
    )
    op.create_index("ix_drift_runs_version_tick", "drift_runs", ["model_version_id", "tick"], unique=False)
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("open_key", sa.Integer(), nullable=True),
        sa.Column("detector", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("first_run_id", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("effect_size", sa.Float(), nullable=False),
        sa.Column("effect_unit", sa.String(length=100), nullable=False),
        sa.Column("estimated_harm", sa.Float(), nullable=True),
        sa.Column("harm_source", sa.String(length=100), nullable=True),
        sa.Column("report_path", sa.String(length=1000), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("opened_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("updated_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("acknowledged_at", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["detector_configs.id"],
            name=op.f("fk_alerts_config_id_detector_configs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["first_run_id"], ["drift_runs.id"], name=op.f("fk_alerts_first_run_id_drift_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["last_run_id"], ["drift_runs.id"], name=op.f("fk_alerts_last_run_id_drift_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_alerts_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("open_key", name=op.f("uq_alerts_open_key")),
    )
    op.create_index(op.f("ix_alerts_config_id"), "alerts", ["config_id"], unique=False)
    op.create_index(op.f("ix_alerts_model_version_id"), "alerts", ["model_version_id"], unique=False)
    op.create_index("ix_alerts_state_updated", "alerts", ["state", "updated_at"], unique=False)
    op.create_table(
        "flagged_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
        sa.Column("ts", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("input_ref", sa.String(length=2000), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("drift_run_id", sa.Integer(), nullable=False),
        sa.Column("created_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["drift_run_id"],
            ["drift_runs.id"],
            name=op.f("fk_flagged_samples_drift_run_id_drift_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_flagged_samples_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flagged_samples")),
        sa.UniqueConstraint("drift_run_id", "prediction_id", name="uq_flagged_samples_drift_run_id_prediction_id"),
    )
    op.create_index(
        "ix_flagged_samples_version_created", "flagged_samples", ["model_version_id", "created_at"], unique=False
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("event", sa.String(length=50), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("leased_until", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("delivered_at", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_webhook_deliveries_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(op.f("ix_webhook_deliveries_alert_id"), "webhook_deliveries", ["alert_id"], unique=False)
    op.create_index(
        "ix_webhook_deliveries_status_next", "webhook_deliveries", ["status", "next_attempt_at"], unique=False
    )


def downgrade() -> None:
    for table in (
        "webhook_deliveries",
        "flagged_samples",
        "alerts",
        "drift_runs",
        "detector_states",
        "reference_windows",
        "detector_configs",
    ):
        op.drop_table(table)
