"""The CLI's one output convention: a table for people by default, ``--json`` for scripts.

Tables are printed at their natural width, never cut to the terminal's 80 columns (ids, names
and reasons stay whole and greppable); JSON is the API's own shape, one document per command.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

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


class ClosedPipeTolerant:
    """A stdout/stderr whose reader may go away (``shiftwatch rollout start ... | head -1``): writes then go nowhere.

    A command's output is a report of what it did; a reader that stopped reading must not abort the
    command half-way (a BrokenPipeError inside a transaction rolled the new rollout back). After the
    first broken write the file descriptor points at /dev/null, so later writes and the flush at exit
    are silent too.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def _to_devnull(self) -> None:
        self.broken = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()
            self._stream.flush()  # what was buffered now goes to /dev/null, not to a traceback at exit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def tolerate_closed_pipes() -> None:
    """Wrap the real stdout and stderr (the entry point does this once; CliRunner's streams are left alone)."""
    if not isinstance(sys.stdout, ClosedPipeTolerant):
        sys.stdout = ClosedPipeTolerant(sys.stdout)
    if not isinstance(sys.stderr, ClosedPipeTolerant):
        sys.stderr = ClosedPipeTolerant(sys.stderr)
