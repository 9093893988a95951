"""labeling: label_tasks (the queue) and labels

Revision ID: labeling_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shiftwatch.db

revision: str = "labeling_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("labeling",)
depends_on: str | Sequence[str] | None = "collector_0001"


def upgrade() -> None:
    op.create_table(
        "label_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
        sa.Column("ts", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("input_ref", sa.String(length=2000), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("probabilities", sa.LargeBinary(), nullable=True),
        sa.Column("predicted_class", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("studio_project_id", sa.Integer(), nullable=True),
        sa.Column("studio_task_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=2000), nullable=True),
        sa.Column("next_attempt_at", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.Column("created_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("sent_at", shiftwatch.db.UtcDateTime(), nullable=True),
        sa.Column("updated_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_label_tasks_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_tasks")),
        sa.UniqueConstraint("prediction_id", name=op.f("uq_label_tasks_prediction_id")),
    )
    op.create_index(
        "ix_label_tasks_version_state_priority", "label_tasks", ["model_version_id", "state", "priority"], unique=False
    )
    op.create_index(op.f("ix_label_tasks_studio_task_id"), "label_tasks", ["studio_task_id"], unique=False)
    op.create_index(op.f("ix_label_tasks_created_at"), "label_tasks", ["created_at"], unique=False)
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(length=320), nullable=False),
        sa.Column("labeled_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("studio_task_id", sa.Integer(), nullable=True),
        sa.Column("studio_annotation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.Column("updated_at", shiftwatch.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_labels_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["label_tasks.id"], name=op.f("fk_labels_task_id_label_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.UniqueConstraint("prediction_id", name=op.f("uq_labels_prediction_id")),
        sa.UniqueConstraint("task_id", name=op.f("uq_labels_task_id")),
    )
    op.create_index("ix_labels_version_labeled_at", "labels", ["model_version_id", "labeled_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_labels_version_labeled_at", table_name="labels")
    op.drop_table("labels")
    op.drop_index(op.f("ix_label_tasks_created_at"), table_name="label_tasks")
    op.drop_index(op.f("ix_label_tasks_studio_task_id"), table_name="label_tasks")
    op.drop_index("ix_label_tasks_version_state_priority", table_name="label_tasks")
    op.drop_table("label_tasks")
