"""The demo tells the whole story end to end on SQLite (fast mode: less traffic per phase)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import func, select

from shiftwatch.collector.models import Prediction
from shiftwatch.db import Database
from shiftwatch.demo.story import run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("demo")
    console = Console(record=True, width=120, force_terminal=False)
    result = run_demo(out, auto_approve=True, fast=True, console=console)
    return result, console.export_text()


@pytest.mark.slow
def test_demo_stores_the_predictions_it_served(demo_run) -> None:  # type: ignore[no-untyped-def]
    result, _ = demo_run
    db = Database.connect(result.database_url)
    with db.session() as session:
        stored = session.scalar(select(func.count()).select_from(Prediction))
    db.dispose()
    assert stored == result.facts["stored_predictions"] > 0


@pytest.mark.slow
def test_demo_writes_an_html_summary_with_the_accuracy_plot(demo_run) -> None:  # type: ignore[no-untyped-def]
    result, _ = demo_run
    page = Path(result.summary_path).read_text()
    assert "<svg" in page and "polyline" in page
    assert "Production accuracy over the stream" in page


@pytest.mark.slow
def test_demo_names_every_missing_piece_in_its_narrative(demo_run) -> None:  # type: ignore[no-untyped-def]
    result, text = demo_run
    for piece in result.missing:
        assert piece.split(" (")[0][:30] in text.replace("\n", " ")


@pytest.mark.slow
def test_demo_accuracy_falls_when_the_drift_is_injected(demo_run) -> None:  # type: ignore[no-untyped-def]
    result, _ = demo_run
    assert result.accuracy["clean"] > 0.9
    assert result.accuracy["drift"] < result.accuracy["clean"] - 0.15
