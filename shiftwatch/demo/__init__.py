"""``shiftwatch demo``: the whole loop, drift to a promoted model, on the embedded SQLite store in a few minutes.

Part of the installed package on purpose: ``shiftwatch demo`` (the README's ``make demo``) is a
command users run, not test tooling. The story is in ``story.py`` (one function per act in
``acts.py`` and ``loop.py``), told about a ``Subject``: the digits CNN by default, the realistic
ResNet-18 example with ``--realistic`` (``realistic.py``). Pieces of the loop that are not in this
build are named plainly, never faked. The story is imported inside the command: ``shiftwatch --help`` stays light.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer()


@app.command()
def demo(
    yes: bool = typer.Option(False, "--yes", "-y", help="approve the canary automatically instead of waiting"),
    out: Path = typer.Option(Path("./shiftwatch-demo"), "--out", help="folder for the database, artifacts and summary.html"),
    fast: bool = typer.Option(False, "--fast", help="less traffic per phase (used by the tests)"),
    realistic: bool = typer.Option(
        False, "--realistic",
        help="the ResNet-18 example on 3x96x96 textured digits, registered as your own model would be (~6 min)"),
    laps: int = typer.Option(
        1, "--laps", min=1, max=4,
        help="times round the loop: 2 brings a second shift that the promoted version's detectors catch, and a v3"),
    concept: bool = typer.Option(
        False, "--concept",
        help="the last lap is concept drift: a class redefined, the inputs unchanged; labels alert, old labels are retired"),
) -> None:
    """Run the whole loop: train, deploy, drift, alert, label, retrain, canary, approve, promote."""
    from shiftwatch.demo.story import run_demo

    if fast and realistic:
        raise typer.BadParameter("--fast is the digits story's; --realistic has its own size", param_hint="--fast")
    if concept and realistic:
        raise typer.BadParameter("--concept is the digits story's (it redefines a digit)", param_hint="--concept")
    run_demo(out, auto_approve=yes, fast=fast, realistic=realistic, laps=laps, concept=concept)
