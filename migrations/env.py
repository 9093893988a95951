"""Alembic environment: runs against the connection or URL that ``shiftwatch.migrate`` hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from shiftwatch.db import Base, import_all_tables, make_engine

import_all_tables()
target_metadata = Base.metadata

# Tables that live in the database but not in the ORM on purpose.
UNMANAGED_PREFIXES = ("predictions_p", "apscheduler_", "predictions_incoming")


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name and name.startswith(UNMANAGED_PREFIXES))


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two replicas starting at once: one migrates, the other waits, then finds nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(7265110)"))
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))  # type: ignore[arg-type]  # shiftwatch.migrate always sets it
    with engine.connect() as conn:
        run_migrations(conn)
    engine.dispose()
