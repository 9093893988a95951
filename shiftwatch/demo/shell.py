"""The demo at a shell prompt: it runs ``shiftwatch`` commands as a user types them, and shows them.

Each command is a fresh process (``python -m shiftwatch``, the installed CLI) with the demo's store and
data folder in its environment, the way a user points the CLI at the store ``shiftwatch serve`` uses.
The command line is printed before it runs, so every step of the story is one a reader can repeat.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from rich.console import Console


@dataclass(frozen=True, slots=True)
class Ran:
    """What a command left: its exit code and what it printed (stdout; stderr is shown as it was)."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The JSON document the command printed last (commands like ``retrain`` print progress before it)."""
        text = self.stdout if self.stdout.startswith(("{", "[")) else self.stdout[self.stdout.rfind("\n{") + 1:]
        return json.loads(text)


class CommandFailed(RuntimeError):
    """A command the story needs exited with a code it did not expect."""


class Shell:
    """Runs ``shiftwatch ARGS`` with ``environment`` (SHIFTWATCH_* variables) added to the demo's own."""

    def __init__(self, environment: Mapping[str, str], console: Console) -> None:
        self.environment = dict(environment)
        self.console = console

    def run(self, *args: str, ok: tuple[int, ...] = (0,), show_output: bool = True, waiting: str | None = None,
            timeout_s: float = 1800) -> Ran:
        """Run one command; a code outside ``ok`` raises ``CommandFailed`` with what it printed.

        ``waiting``: a long command (training) shows this beside a spinner and the time it has taken.
        """
        self.console.print(f"[dim]$[/] [bold]shiftwatch {shlex.join(args)}[/]", highlight=False, soft_wrap=True)
        # The child inherits PATH and the rest of the demo's environment, plus the store's settings.
        environment = {**os.environ, **self.environment, "COLUMNS": "120"}
        command = [sys.executable, "-m", "shiftwatch", *args]
        with self.console.status(waiting or "running", spinner="dots") if waiting else nullcontext():
            started = time.monotonic()
            done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout_s, check=False)
        if waiting:
            self.console.print(f"[dim]({time.monotonic() - started:.0f} s)[/]", highlight=False)
        ran = Ran(done.returncode, done.stdout, done.stderr)
        if show_output and ran.stdout.strip():
            self.console.print(ran.stdout.rstrip(), highlight=False, markup=False, soft_wrap=True)
        if ran.code not in ok:
            raise CommandFailed(f"shiftwatch {shlex.join(args)} exited {ran.code}: {(ran.stderr or ran.stdout).strip()[-2000:]}")
        return ran
