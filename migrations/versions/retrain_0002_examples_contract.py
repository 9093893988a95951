"""retrain: every retrainable version names its model contract; the example models moved to shiftwatch.examples

Versions the built-in digits CNN registered before it went through the model contract have
weights but no ``report["contract"]``: they get the digits example's contract, so retraining
rebuilds them the one way. Contracts naming the ResNet example at its old module are renamed.

Revision ID: retrain_0002
Revises: retrain_0001
Create Date: 2026-12-07
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "retrain_0002"
down_revision: str | Sequence[str] | None = "retrain_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIGITS = {"kind": "torch", "factory": "shiftwatch.examples.digits_cnn:build", "embedding_layer": None,
          "student_factory": None, "trainer": None, "reference_set": "shiftwatch.examples.digits:reference_set"}  # fmt: skip
MOVED = {"shiftwatch.retrain.resnet:": "shiftwatch.examples.resnet:"}


def _upgraded(report: dict[str, Any]) -> dict[str, Any] | None:
    """The report with its contract filled in or renamed, or None when it needs no change."""
    contract = report.get("contract")
    if contract is None:
        return {**report, "contract": dict(DIGITS)} if report.get("weights_path") else None
    changed = dict(contract)
    for key in ("factory", "student_factory"):
        for old, new in MOVED.items():
            if isinstance(changed.get(key), str) and changed[key].startswith(old):
                changed[key] = new + changed[key][len(old) :]
    return {**report, "contract": changed} if changed != contract else None


def upgrade() -> None:
    bind = op.get_bind()
    versions = sa.table("model_versions", sa.column("id", sa.Integer), sa.column("report", sa.JSON))
    for row in bind.execute(sa.select(versions.c.id, versions.c.report)).all():
        report = row.report if isinstance(row.report, dict) else json.loads(row.report or "null")
        upgraded = _upgraded(report) if isinstance(report, dict) else None
        if upgraded is not None:
            bind.execute(versions.update().where(versions.c.id == row.id).values(report=upgraded))


def downgrade() -> None:
    """Reports keep their contracts: they name modules older code does not have, so retrain with this release."""
