"""Renamed CLI options and values keep working for old scripts: hidden, with a deprecation line on stderr."""

from __future__ import annotations

from typing import Any, TypeVar

import typer

from shiftwatch.errors import Invalid

T = TypeVar("T")


def deprecated_option(flag: str, renamed_to: str) -> Any:
    """A hidden option under its old FLAG; ``renamed`` folds its value into the new one."""
    return typer.Option(None, flag, hidden=True, help=f"deprecated spelling of {renamed_to}")


def renamed(value: T | None, old_value: T | None, flag: str, old_flag: str) -> T | None:
    """The new option's value, or the old spelling's with a warning; both at once is bad input."""
    if old_value is not None:
        if value is not None:
            raise Invalid(flag, f"given twice, as {flag} and as its old spelling {old_flag}; keep {flag}")
        typer.echo(f"warning: {old_flag} is deprecated, use {flag}", err=True)
        return old_value
    return value


def renamed_required(value: T | None, old_value: T | None, flag: str, old_flag: str) -> T:
    """``renamed`` for a required option: neither spelling given is bad input too."""
    chosen = renamed(value, old_value, flag, old_flag)
    if chosen is None:
        raise Invalid(flag, "missing; this option is required")
    return chosen


def renamed_value(value: str, option: str, old: str, new: str) -> str:
    """An option's old VALUE spelling (e.g. ``--kind probs``) mapped to the new one, with a warning."""
    if value != old:
        return value
    typer.echo(f"warning: {option} {old} is deprecated, use {option} {new}", err=True)
    return new
