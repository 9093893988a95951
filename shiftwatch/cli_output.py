"""The CLI's one output convention: a table for people by default, ``--json`` for scripts.

Tables are printed at their natural width, never cut to the terminal's 80 columns (ids, names
and reasons stay whole and greppable); JSON is the API's own shape, one document per command.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer

JSON_OPTION = typer.Option(False, "--json", help="print JSON (the API's shape) instead of a table")


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def wide_console():
    """A rich console wider than any row: rich then measures tables instead of folding them into the terminal."""
    from rich.console import Console

    return Console(width=100_000, soft_wrap=True)


def emit_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A rich table as wide as its content; empty cells read ``-``."""
    from rich.table import Table

    if not rows:
        typer.echo(f"no {title or 'rows'}")
        return
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*("-" if cell is None or cell == "" else str(cell) for cell in row))
    wide_console().print(table)


def emit_fields(fields: dict[str, Any]) -> None:
    """One record as ``name: value`` lines (nested values as compact JSON)."""
    width = max(map(len, fields), default=0)
    for name, value in fields.items():
        shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
        typer.echo(f"{name.ljust(width)}  {'-' if shown is None or shown == '' else shown}")


def when(value: Any) -> str:
    """A datetime as minutes, for tables; JSON keeps the full timestamp."""
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def db_session():
    """Settings and a connected database for one command; imported here so ``--help`` stays light."""
    from shiftwatch.cli import settings_or_exit
    from shiftwatch.db import Database

    settings = settings_or_exit()
    return settings, Database.connect(settings.database_url)
