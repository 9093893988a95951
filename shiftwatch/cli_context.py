"""What a CLI command starts from: the settings (bad ones exit 2) and the database, migrated where the command needs it.

A module of its own, importing only ``errors`` at module level, so every CLI module can import it
without importing the root ``shiftwatch.cli`` (which imports them) or SQLAlchemy before a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shiftwatch.errors import ShiftwatchError

if TYPE_CHECKING:
    from shiftwatch.db import Database
    from shiftwatch.settings import Settings


def settings_or_exit() -> Settings:
    """Load settings; a bad value raises ShiftwatchError naming the SHIFTWATCH_ variable (main() exits 2)."""
    from pydantic import ValidationError

    from shiftwatch.settings import load_settings

    try:
        return load_settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "config"
        raise ShiftwatchError(f"configuration: SHIFTWATCH_{field.upper()}: {error['msg']}") from None


def open_db(database_url: str, *, migrate: bool, read_url: str | None = None) -> Database:
    """The database a command (or the demo) works on; ``migrate`` first brings its schema to the newest revision.

    ``read_url``: its streaming replica, for commands whose reads may lag (the detector worker's windows).

    Commands that write what a first run may need (tokens, a registered model, a check) migrate;
    those that read or act on existing rows do not.
    """
    from shiftwatch.db import Database

    if migrate:
        from shiftwatch.migrate import upgrade  # only when asked: importing Alembic costs about half a second

        upgrade(database_url)
    return Database.connect(database_url, read_url)
