"""Alembic migrations: the only way the schema is created (``shiftwatch db upgrade``).

Each domain package has its own branch (``branch_labels``), so domains add tables
without stepping on each other; ``upgrade heads`` applies them all.
"""
