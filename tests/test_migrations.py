"""The Alembic migrations are the schema: they must produce exactly the ORM's tables."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shiftwatch.db import Base, Database, import_all_models


def test_migrations_produce_exactly_the_orm_schema(db: Database) -> None:
    import_all_models()
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": _include_unmanaged}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_every_orm_table_exists_after_upgrade(db: Database) -> None:
    import_all_models()
    tables = set(inspect(db.engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


def _include_unmanaged(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    prefixes = ("predictions_p", "apscheduler_", "predictions_incoming", "alembic_version")
    return not (type_ == "table" and name and name.startswith(prefixes))
