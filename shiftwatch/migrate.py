"""Run the Alembic migrations programmatically (``shiftwatch db upgrade``, server and demo start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import shiftwatch.migrations


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(shiftwatch.migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the schema to the newest revision of every domain branch."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
