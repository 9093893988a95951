"""collector: models, model_versions, predictions (daily range partitions on PostgreSQL)

Revision ID: collector_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shiftwatch.db

revision: str = "collector_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("collector",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("class_names", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("created_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("artifact_path", sa.String(length=1000), nullable=True),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=True),
        sa.Column("embedding_dim", sa.Integer(), nullable=False),
        sa.Column("input_spec", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_versions_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
    )
    op.create_index(op.f("ix_model_versions_model_id"), "model_versions", ["model_id"], unique=False)
    op.create_table(
        "predictions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ts", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("stream_id", sa.String(length=200), nullable=True),
        sa.Column("predicted_class", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("probabilities", sa.LargeBinary(), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("input_ref", sa.String(length=2000), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("received_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_predictions_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", "ts", name=op.f("pk_predictions")),
        postgresql_partition_by="RANGE (ts)",
    )
    op.create_index("ix_predictions_version_ts", "predictions", ["model_version_id", "ts"], unique=False)
    op.create_index("ix_predictions_request_id", "predictions", ["request_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_predictions_request_id", table_name="predictions")
    op.drop_index("ix_predictions_version_ts", table_name="predictions")
    op.drop_table("predictions")
    op.drop_index(op.f("ix_model_versions_model_id"), table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("models")
