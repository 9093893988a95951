"""Run ``shiftwatch ...`` against a test's database and data folder: in this process, or as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from shiftwatch.settings import Settings


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The variables a user exports so the CLI finds the server's store (``extra``: more SHIFTWATCH_* settings)."""
    return {"SHIFTWATCH_DATABASE_URL": settings.database_url, "SHIFTWATCH_DATA_DIR": str(settings.data_dir), **extra}


def cli(settings: Settings, *args: str, **extra: str) -> Any:
    """``shiftwatch ARGS`` in this process (typer's CliRunner; ``.stdout`` and ``.stderr`` apart)."""
    from typer.testing import CliRunner

    from shiftwatch.cli import app

    return CliRunner().invoke(app, list(args), env=environment(settings, **extra))


def cli_process(settings: Settings, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """``shiftwatch ARGS`` as a user runs it: its own process, its exit code (2 for bad input), its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")} | environment(settings, **extra)
    return subprocess.run([sys.executable, "-c", "from shiftwatch.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
